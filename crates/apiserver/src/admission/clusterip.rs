//! ClusterIP allocation for Services from the service CIDR (10.96.0.0/12, kube-apiserver's
//! default): the lowest free address, skipping the network address and 10.96.0.1, which is
//! reserved for the `default/kubernetes` Service (no other Service gets it, asked or not). "In use" is every Service's stored `clusterIPs` plus addresses
//! handed out moments ago whose create is still in flight.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Operation;
use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::{ListParams, Resources, cause};
use crate::resources::{Kind, ResourceType, meta, of};

/// The service CIDR.
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);

/// The first address of the range: the `kubernetes` Service's.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// Hands out ClusterIPs.
#[derive(Debug, Default)]
pub struct ClusterIpAllocator {
    /// Addresses handed out whose Service may not be stored yet.
    pending: Mutex<BTreeSet<u32>>,
}

fn range() -> (u32, u32) {
    let base = u32::from(SERVICE_CIDR.0);
    let size = 1u32 << (32 - SERVICE_CIDR.1);
    (base, base + size - 1)
}

fn in_range(ip: Ipv4Addr) -> bool {
    let (first, last) = range();
    let n = u32::from(ip);
    n > first && n < last
}

impl ClusterIpAllocator {
    /// Admission for Services: allocate on create, keep on update.
    pub async fn admit(
        &self,
        res: &Resources,
        rt: &'static ResourceType,
        op: Operation,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let name = meta::name(svc).to_owned();
        let spec_type = svc["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_owned();
        let asked = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_owned();
        if op == Operation::Update {
            let before = old
                .map(|o| o["spec"]["clusterIP"].clone())
                .unwrap_or(Value::Null);
            if asked.is_empty() && spec_type != "ExternalName" {
                svc["spec"]["clusterIP"] = before.clone();
                svc["spec"]["clusterIPs"] = old
                    .map(|o| o["spec"]["clusterIPs"].clone())
                    .unwrap_or(Value::Null);
            } else if before.as_str().is_some_and(|b| !b.is_empty() && b != asked) {
                return Err(ApiError::invalid(
                    rt,
                    &name,
                    vec![cause(
                        "FieldValueInvalid",
                        "spec.clusterIPs[0]",
                        &format!(
                            "Invalid value: []string{{{}}}: may not change once set",
                            crate::errors::quote(&asked)
                        ),
                    )],
                ));
            }
            return Ok(());
        }
        if spec_type == "ExternalName" {
            return Ok(());
        }
        if asked == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let used = self.used(res).await?;
        let ip = if asked.is_empty() {
            self.allocate(&used).ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?
        } else {
            let invalid = |why: &str| {
                ApiError::invalid(
                    rt,
                    &name,
                    vec![cause(
                        "FieldValueInvalid",
                        "spec.clusterIPs",
                        &format!(
                            "Invalid value: []string{{{}}}: {why}",
                            crate::errors::quote(&asked)
                        ),
                    )],
                )
            };
            let ip: Ipv4Addr = asked
                .parse()
                .map_err(|_| invalid("must be a valid IP address"))?;
            if !in_range(ip) {
                return Err(invalid(&format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}/{}",
                    SERVICE_CIDR.0, SERVICE_CIDR.1
                )));
            }
            // The first address belongs to `default/kubernetes` even while that Service
            // is briefly gone (the bootstrap reconciler puts it back).
            let is_master = meta::namespace(svc) == Some("default") && name == "kubernetes";
            let taken = if ip == KUBERNETES_SERVICE_IP {
                !is_master
            } else {
                used.contains(&u32::from(ip))
            };
            if taken {
                return Err(invalid(&format!(
                    "failed to allocate IP {ip}: provided IP is already allocated"
                )));
            }
            self.pending
                .lock()
                .expect("allocator lock")
                .insert(u32::from(ip));
            ip
        };
        svc["spec"]["clusterIP"] = json!(ip.to_string());
        svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        svc["spec"]["ipFamilies"] = json!(["IPv4"]);
        if svc["spec"]["ipFamilyPolicy"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
        Ok(())
    }

    /// The ClusterIPs of every stored Service.
    async fn used(&self, res: &Resources) -> ApiResult<BTreeSet<u32>> {
        let page = res
            .list(of(Kind::Service), None, &ListParams::default())
            .await?;
        let mut used = BTreeSet::new();
        for svc in &page.items {
            for ip in svc["spec"]["clusterIPs"].as_array().into_iter().flatten() {
                if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
                    used.insert(u32::from(ip));
                }
            }
        }
        // Pending addresses that now appear in the store are no longer pending.
        let mut pending = self.pending.lock().expect("allocator lock");
        pending.retain(|ip| !used.contains(ip));
        if pending.len() > 1024 {
            pending.clear();
        }
        used.extend(pending.iter().copied());
        Ok(used)
    }

    fn allocate(&self, used: &BTreeSet<u32>) -> Option<Ipv4Addr> {
        let (first, last) = range();
        let start = u32::from(KUBERNETES_SERVICE_IP) + 1;
        let ip = (start..last).find(|ip| !used.contains(ip))?;
        debug_assert!(ip > first);
        self.pending.lock().expect("allocator lock").insert(ip);
        Some(Ipv4Addr::from(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_the_lowest_free_address() {
        let alloc = ClusterIpAllocator::default();
        let used = BTreeSet::from([u32::from(Ipv4Addr::new(10, 96, 0, 2))]);
        assert_eq!(alloc.allocate(&used), Some(Ipv4Addr::new(10, 96, 0, 3)));
        assert!(in_range(Ipv4Addr::new(10, 111, 255, 254)));
        assert!(!in_range(Ipv4Addr::new(10, 112, 0, 1)));
        assert!(!in_range(Ipv4Addr::new(10, 96, 0, 0)));
    }
}
