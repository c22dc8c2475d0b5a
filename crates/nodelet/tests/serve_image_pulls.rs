//! The node's image pull queue under `nodelet serve`: pods created together pull through one
//! queue (serialized by default, as the kubelet's `serializeImagePulls`), and each `Pulled`
//! event reads `Successfully pulled image "<image>" in <pull> (<total> including waiting).
//! Image size: <n> bytes.`, the total counting the time spent waiting behind other pulls.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::Server;

/// A Go duration as the kubelet prints one truncated to milliseconds (`0s`, `12ms`,
/// `1.594s`, `1m2.5s`), in milliseconds.
fn go_duration_ms(text: &str) -> f64 {
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or_else(|| panic!("no unit in duration {text:?}"));
        let number: f64 = rest[..number_len]
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {text:?}"));
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "µs" | "us" => 0.001,
            "ns" => 0.000_001,
            unit => panic!("unit {unit:?} in duration {text:?}"),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    total
}

/// `(pull, total, size)` read from a `Successfully pulled image` message for `image`,
/// checking its whole format.
fn pulled_message(message: &str, image: &str) -> (f64, f64, u64) {
    let parts = (|| {
        let rest = message.strip_prefix(&format!("Successfully pulled image \"{image}\" in "))?;
        let (pull, rest) = rest.split_once(" (")?;
        let (total, rest) = rest.split_once(" including waiting). Image size: ")?;
        let size = rest.strip_suffix(" bytes.")?.parse().ok()?;
        Some((go_duration_ms(pull), go_duration_ms(total), size))
    })();
    parts.unwrap_or_else(|| panic!("not a Pulled message for {image}: {message:?}"))
}

/// The messages of the pod's `Pulled` events.
fn pulled_events(server: &Server, pod: &str) -> Vec<String> {
    server
        .pod_events(pod)
        .into_iter()
        .filter(|(_, reason, _)| reason == "Pulled")
        .map(|(_, _, message)| message)
        .collect()
}

/// Creates one pod per image at once (one file), waits for them all to succeed and checks
/// each one's `Pulled` event. An image asked for twice may be found present by the second
/// pod (its worker looked after the first pull ended) or pulled again behind the first; a
/// pod's first image never is.
fn pods_pulling_at_once_report_their_waiting(server: &Server, bed: &BedInfo) {
    let images = [
        ("first", BedInfo::reference(&bed.plain, "tiny")),
        ("second", BedInfo::reference(&bed.plain, "medium")),
        ("again", BedInfo::reference(&bed.plain, "tiny")),
    ];
    let manifests: Vec<String> = images
        .iter()
        .map(|(name, image)| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {image}\n    command: [\"true\"]\n"
            )
        })
        .collect();
    server.create_from_yaml(&manifests.join("---\n"));
    for (name, _) in &images {
        server.wait_for_jsonpath(120, name, "{.status.phase}", |out| out == "Succeeded");
    }
    let mut sizes = Vec::new();
    for (name, image) in &images {
        let events = pulled_events(server, name);
        assert_eq!(events.len(), 1, "{name}: {events:?}");
        let message = &events[0];
        eprintln!("{name}: {message}");
        if *name == "again"
            && message.starts_with(&format!(
                "Container image \"{image}\" already present on machine"
            ))
        {
            continue;
        }
        let (pull, total, size) = pulled_message(message, image);
        assert!(total >= pull, "{name}: {message}");
        assert!(size > 0, "{name}: {message}");
        sizes.push((image, size));
    }
    // Pulled twice or not, an image reports one size.
    for (image, size) in &sizes {
        for (other, other_size) in &sizes {
            if image == other {
                assert_eq!(size, other_size, "{image}");
            }
        }
    }
}

#[test]
fn serialized_pulls_count_the_wait_in_the_pulled_event() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    pods_pulling_at_once_report_their_waiting(&server, &bed);
}

#[test]
fn parallel_pulls_with_a_limit_report_the_same_way() {
    let bed = Bed::shared().unwrap();
    let server = Server::start_with_config(
        Some(&bed),
        "serialize_image_pulls = false\nmax_parallel_image_pulls = 2",
    );
    pods_pulling_at_once_report_their_waiting(&server, &bed);
}

#[test]
fn go_durations_parse_as_the_kubelet_prints_them() {
    assert_eq!(go_duration_ms("0s"), 0.0);
    assert_eq!(go_duration_ms("12ms"), 12.0);
    assert_eq!(go_duration_ms("1.594s"), 1594.0);
    assert_eq!(go_duration_ms("1m2.5s"), 62_500.0);
    assert_eq!(
        pulled_message(
            "Successfully pulled image \"a:1\" in 313ms (1.2s including waiting). Image size: 42 bytes.",
            "a:1"
        ),
        (313.0, 1200.0, 42)
    );
}
