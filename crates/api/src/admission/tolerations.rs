//! Merging toleration lists (RuntimeClass scheduling, DefaultTolerationSeconds): upstream's
//! `MergeTolerations`, which drops any toleration another one already covers.

use crate::k8s::api::core::v1::Toleration;

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Whether `ss` tolerates everything `t` tolerates.
pub fn is_superset(ss: &Toleration, t: &Toleration) -> bool {
    if ss == t {
        return true;
    }
    let (ss_key, ss_op) = (s(&ss.key), s(&ss.operator));
    // an empty key with Exists matches every key
    if s(&t.key) != ss_key && (!ss_key.is_empty() || ss_op != "Exists") {
        return false;
    }
    // an empty effect matches every effect
    if s(&t.effect) != s(&ss.effect) && !s(&ss.effect).is_empty() {
        return false;
    }
    if s(&ss.effect) == "NoExecute"
        && let Some(limit) = ss.toleration_seconds
        && t.toleration_seconds.is_none_or(|secs| secs > limit)
    {
        return false;
    }
    match ss_op {
        "Equal" | "" => s(&t.operator) == "Equal" && s(&t.value) == s(&ss.value),
        "Exists" => true,
        _ => false,
    }
}

/// `first` then `second`, without tolerations covered by another (of two equal ones the
/// first is kept).
pub fn merge_tolerations(first: &[Toleration], second: &[Toleration]) -> Vec<Toleration> {
    let all: Vec<&Toleration> = first.iter().chain(second).collect();
    let mut merged: Vec<Toleration> = Vec::new();
    'next: for (i, t) in all.iter().enumerate() {
        if merged.iter().any(|m| is_superset(m, t)) {
            continue;
        }
        for t2 in &all[i + 1..] {
            if t != t2 && is_superset(t2, t) {
                continue 'next;
            }
        }
        merged.push((*t).clone());
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let o = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        Toleration {
            key: o(key),
            operator: o(op),
            value: o(value),
            effect: o(effect),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn merges_like_upstream() {
        let foo_bar = t("foo", "Equal", "bar", "NoSchedule", None);
        let foo_exists = t("foo", "Exists", "", "NoSchedule", None);
        let all = t("", "Exists", "", "", None);
        let ne300 = t("k", "Exists", "", "NoExecute", Some(300));
        let ne100 = t("k", "Exists", "", "NoExecute", Some(100));
        let cases: Vec<(Vec<Toleration>, Vec<Toleration>, Vec<Toleration>)> = vec![
            (vec![], vec![], vec![]),
            (vec![foo_bar.clone()], vec![], vec![foo_bar.clone()]),
            (
                vec![foo_bar.clone()],
                vec![foo_bar.clone()],
                vec![foo_bar.clone()],
            ),
            (
                vec![foo_bar.clone()],
                vec![foo_exists.clone()],
                vec![foo_exists.clone()],
            ),
            (
                vec![foo_exists.clone()],
                vec![foo_bar.clone()],
                vec![foo_exists.clone()],
            ),
            (
                vec![foo_bar.clone(), ne300.clone()],
                vec![all.clone()],
                vec![all.clone()],
            ),
            (
                vec![ne100.clone()],
                vec![ne300.clone()],
                vec![ne300.clone()],
            ),
            (
                vec![ne300.clone()],
                vec![ne100.clone()],
                vec![ne300.clone()],
            ),
            (
                vec![t("a", "Equal", "1", "NoSchedule", None)],
                vec![t("b", "Equal", "2", "NoSchedule", None)],
                vec![
                    t("a", "Equal", "1", "NoSchedule", None),
                    t("b", "Equal", "2", "NoSchedule", None),
                ],
            ),
            // an empty operator covers an explicit Equal, but not the other way round
            (
                vec![t("a", "", "1", "", None)],
                vec![t("a", "Equal", "1", "", None)],
                vec![t("a", "", "1", "", None)],
            ),
            (
                vec![t("a", "Equal", "1", "", None)],
                vec![t("a", "", "1", "", None)],
                vec![t("a", "", "1", "", None)],
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(merge_tolerations(&a, &b), want, "{a:?} + {b:?}");
        }
    }
}
