//! The fault proxy itself: it forwards to registry A faithfully (ranges included) unless a
//! rule says otherwise, and records what it was asked.

use std::io::Read;

use nodelet_testbed::Bed;
use nodelet_testbed::fault_proxy::{Fault, FaultProxy, Rule};
use reqwest::StatusCode;
use reqwest::blocking::Client;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn forwards_records_and_injects() {
    let bed = Bed::shared().unwrap();
    let proxy = FaultProxy::start(&bed.plain.host).unwrap();
    let client = Client::new();
    let manifest_url = format!("{}/v2/tiny/manifests/v1", proxy.url());

    let direct = client
        .get(format!("{}/v2/tiny/manifests/v1", bed.plain.url))
        .header("Accept", MANIFEST)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let proxied = client
        .get(&manifest_url)
        .header("Accept", MANIFEST)
        .send()
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    assert_eq!(
        proxied.headers()["docker-content-digest"],
        bed.images["tiny"].digest.as_str()
    );
    assert_eq!(proxied.bytes().unwrap(), direct);

    // A range is forwarded (to a blob: registries serve manifests whole); with IgnoreRange
    // the whole body comes back as 200.
    let manifest: serde_json::Value = serde_json::from_slice(&direct).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    let blob_url = format!("{}/v2/tiny/blobs/{config}", proxy.url());
    let blob = client.get(&blob_url).send().unwrap().bytes().unwrap();
    let ranged = client
        .get(&blob_url)
        .header("Range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().unwrap(), blob[10..]);
    proxy.inject(Rule::new(config, Fault::IgnoreRange));
    let ignored = client
        .get(&blob_url)
        .header("Range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(ignored.status(), StatusCode::OK);
    assert_eq!(ignored.bytes().unwrap(), blob);

    // The third request from now gets 429, the next two 500, then normal service.
    proxy.inject(
        Rule::new(
            "/manifests/",
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .nth(3),
    );
    proxy.inject(Rule::new("/manifests/", Fault::ServerError).nth(4).times(2));
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            let response = client.get(&manifest_url).header("Accept", MANIFEST).send();
            response.unwrap().status().as_u16()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429, 500, 500, 200]);

    // A truncated body: the client sees the promised length and fewer bytes.
    // Rules count the matching requests made after they were added.
    proxy.inject(Rule::new(config, Fault::TruncateAfter(5)));
    let mut truncated = client.get(&blob_url).send().unwrap();
    assert_eq!(truncated.content_length(), Some(blob.len() as u64));
    let mut body = Vec::new();
    assert!(truncated.read_to_end(&mut body).is_err() || body.len() < blob.len());

    // A 401 names the proxy's token endpoint, which hands out numbered tokens.
    proxy.inject(Rule::new("/manifests/v1", Fault::Unauthorized));
    let refused = client.get(&manifest_url).send().unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(&proxy.token_realm()), "{challenge}");
    let token: serde_json::Value = client
        .get(proxy.token_realm())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(token["token"], "fault-proxy-token-1");
    assert_eq!(proxy.tokens_issued(), 1);

    let requests = proxy.requests_to("/manifests/v1");
    assert_eq!(requests.len(), 8);
    assert_eq!(requests[7].status, 401);
    assert_eq!(requests[7].fault, Some(Fault::Unauthorized));
    let requests = proxy.requests_to(config);
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=10-"));
    assert_eq!(requests[1].status, 206);
    assert_eq!(requests[2].fault, Some(Fault::IgnoreRange));
    assert_eq!(requests[2].status, 200);
    assert_eq!(requests[3].fault, Some(Fault::TruncateAfter(5)));
    assert!(proxy.requests().iter().all(|r| r.method == "GET"));
}
