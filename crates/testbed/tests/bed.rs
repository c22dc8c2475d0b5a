//! The test bed itself: the registries answer as their kind should, refuse anonymous access
//! where they must, honour token scopes, and serve every image so skopeo reads it back whole.

use std::process::Command;

use nodelet_testbed::{Bed, BedInfo, Contents, RegistryInfo};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

fn https_client(bed: &BedInfo) -> Client {
    let ca = std::fs::read(&bed.ca_cert).unwrap();
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap()
}

fn header(response: &reqwest::blocking::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `skopeo ARGS...` against one registry of the bed, with its CA and optional login.
fn skopeo(
    bed: &BedInfo,
    registry: &RegistryInfo,
    login: Option<&nodelet_testbed::Login>,
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new("skopeo");
    command.arg(args[0]);
    if registry.url.starts_with("http://") {
        command.arg(if args[0] == "copy" {
            "--src-tls-verify=false"
        } else {
            "--tls-verify=false"
        });
    } else if args[0] == "copy" {
        command.arg("--src-cert-dir").arg(bed.cert_dir(registry));
    } else {
        command.arg("--cert-dir").arg(bed.cert_dir(registry));
    }
    if let Some(login) = login {
        let creds = format!("{}:{}", login.username, login.password);
        command
            .arg(if args[0] == "copy" {
                "--src-creds"
            } else {
                "--creds"
            })
            .arg(creds);
    }
    command.args(&args[1..]).output().unwrap()
}

#[test]
fn each_registry_answers_v2_with_its_challenge() {
    let bed = Bed::shared().unwrap();
    let plain = Client::new()
        .get(format!("{}/v2/", bed.plain.url))
        .send()
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);

    let client = https_client(&bed);
    let basic = client.get(format!("{}/v2/", bed.basic.url)).send().unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&basic, "www-authenticate").starts_with("Basic realm="),
        "{basic:?}"
    );

    let token = client.get(format!("{}/v2/", bed.token.url)).send().unwrap();
    assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&token, "www-authenticate"),
        format!(
            r#"Bearer realm="{}",service="{}""#,
            bed.token_realm, bed.token_service
        )
    );
}

#[test]
fn anonymous_access_to_b_and_c_is_refused() {
    let bed = Bed::shared().unwrap();
    let client = https_client(&bed);
    for registry in [&bed.basic, &bed.token] {
        for image in ["tiny", "private"] {
            let url = format!("{}/v2/{image}/manifests/v1", registry.url);
            assert_eq!(
                client.get(&url).send().unwrap().status(),
                StatusCode::UNAUTHORIZED,
                "{url}"
            );
        }
    }
    // An anonymous token grants nothing, so C still refuses it.
    let token: Value = client
        .get(&bed.token_realm)
        .query(&[
            ("service", bed.token_service.as_str()),
            ("scope", "repository:tiny:pull"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let refused = client
        .get(format!("{}/v2/tiny/manifests/v1", bed.token.url))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&refused, "www-authenticate").contains(r#"error="insufficient_scope""#),
        "{refused:?}"
    );
}

#[test]
fn basic_auth_rejects_a_wrong_password() {
    let bed = Bed::shared().unwrap();
    let client = https_client(&bed);
    let url = format!("{}/v2/tiny/manifests/v1", bed.basic.url);
    let wrong = client
        .get(&url)
        .basic_auth(&bed.puller.username, Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client
        .get(&url)
        .basic_auth(&bed.puller.username, Some(&bed.puller.password))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

fn token_for(
    bed: &BedInfo,
    login: Option<(&str, &str)>,
    scope: &str,
) -> reqwest::blocking::Response {
    let mut request = https_client(bed)
        .get(&bed.token_realm)
        .query(&[("service", bed.token_service.as_str()), ("scope", scope)]);
    if let Some((user, password)) = login {
        request = request.basic_auth(user, Some(password));
    }
    request.send().unwrap()
}

/// The `access` claim of a JWT (the middle segment, base64url).
fn access_claim(token: &str) -> Value {
    use base64::Engine;
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["access"].clone()
}

#[test]
fn token_server_grants_pull_and_push_as_each_user_may() {
    let bed = Bed::shared().unwrap();
    let scope = "repository:tiny:pull,push";
    let puller: Value = token_for(
        &bed,
        Some((&bed.puller.username, &bed.puller.password)),
        scope,
    )
    .json()
    .unwrap();
    assert_eq!(
        access_claim(puller["token"].as_str().unwrap())[0]["actions"],
        serde_json::json!(["pull"])
    );
    let pusher: Value = token_for(
        &bed,
        Some((&bed.pusher.username, &bed.pusher.password)),
        scope,
    )
    .json()
    .unwrap();
    assert_eq!(
        access_claim(pusher["token"].as_str().unwrap())[0]["actions"],
        serde_json::json!(["pull", "push"])
    );
    assert!(pusher["expires_in"].as_u64().unwrap() > 0);

    let wrong = token_for(&bed, Some((&bed.puller.username, "wrong")), scope);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let log = std::fs::read_to_string(&bed.token_log).unwrap();
    assert!(log.contains("rejected user=puller"), "{log}");
    assert!(
        !log.contains(&bed.puller.password),
        "passwords must not be logged"
    );
}

#[test]
fn skopeo_reads_every_image_back_from_every_registry_that_has_it() {
    let bed = Bed::shared().unwrap();
    assert!(bed.images.len() >= 7, "{:?}", bed.images.keys());
    for (registry, login) in [
        (&bed.plain, None),
        (&bed.basic, Some(&bed.puller)),
        (&bed.token, Some(&bed.puller)),
    ] {
        for image in bed.images.values() {
            let reference = format!(
                "docker://{}",
                BedInfo::reference(registry, &image.repository)
            );
            let inspect = skopeo(&bed, registry, login, &["inspect", "--raw", &reference]);
            if image.private && registry.url.starts_with("http://") {
                assert!(
                    !inspect.status.success(),
                    "{} must not be on the plain registry",
                    image.repository
                );
                continue;
            }
            assert!(
                inspect.status.success(),
                "{reference}: {}",
                String::from_utf8_lossy(&inspect.stderr)
            );
            let digest = format!("sha256:{}", sha256_hex(&inspect.stdout));
            assert_eq!(digest, image.digest, "{reference}");

            // A full copy downloads and verifies every blob.
            let target = tempfile::tempdir().unwrap();
            let destination = format!("dir:{}", target.path().display());
            let mut args = vec!["copy", "--quiet"];
            if !image.platforms.is_empty() {
                args.push("--all");
            }
            args.extend([reference.as_str(), destination.as_str()]);
            let copy = skopeo(&bed, registry, login, &args);
            assert!(
                copy.status.success(),
                "{reference}: {}",
                String::from_utf8_lossy(&copy.stderr)
            );
        }
    }
}

#[test]
fn images_have_the_media_types_and_platforms_tests_rely_on() {
    let bed = Bed::shared().unwrap();
    let media_type = |name: &str| bed.images[name].media_type.as_str();
    assert_eq!(
        media_type("tiny"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        media_type("config"),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        media_type("multi"),
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        media_type("multi-docker"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(
        bed.images["multi"].platforms,
        ["linux/amd64", "linux/arm64/v8"]
    );
    assert!(
        bed.images["medium"].compressed_bytes > 80_000_000,
        "{}",
        bed.images["medium"].compressed_bytes
    );
    assert!(bed.images["private"].private);

    let config = skopeo(
        &bed,
        &bed.plain,
        None,
        &[
            "inspect",
            "--config",
            &format!("docker://{}", BedInfo::reference(&bed.plain, "config")),
        ],
    );
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );
    let config: Value = serde_json::from_slice(&config.stdout).unwrap();
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/echo", "entrypoint"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["from", "cmd"]));
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(c["Labels"]["io.nodelet.testbed"], "config-image");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello from the image config")
    );
}

#[test]
fn the_whiteout_image_deletes_a_file_and_makes_a_directory_opaque() {
    let bed = Bed::shared().unwrap();
    let layout = &bed.layout;
    let manifest = blob_json(layout, &bed.images["whiteout"].layout_digest);
    let layers = manifest["layers"].as_array().unwrap();
    let names = |layer: &Value| -> Vec<String> {
        let digest = layer["digest"].as_str().unwrap();
        let blob = std::fs::File::open(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    };
    let lower = names(&layers[1]);
    let upper = names(&layers[2]);
    assert!(
        lower.contains(&"data/gone".to_string())
            && lower.contains(&"data/opaque/sub/older".to_string()),
        "{lower:?}"
    );
    assert!(upper.contains(&"data/.wh.gone".to_string()), "{upper:?}");
    assert!(
        upper.contains(&"data/opaque/.wh..wh..opq".to_string()),
        "{upper:?}"
    );
}

#[test]
fn multi_arch_images_name_their_architecture_in_a_file() {
    let bed = Bed::shared().unwrap();
    let index = blob_json(&bed.layout, &bed.images["multi"].layout_digest);
    for (entry, expected) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["linux/amd64\n", "linux/arm64/v8\n"])
    {
        let manifest = blob_json(&bed.layout, entry["digest"].as_str().unwrap());
        let marker = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let blob = std::fs::File::open(
            bed.layout
                .join("blobs/sha256")
                .join(marker.trim_start_matches("sha256:")),
        )
        .unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let mut found = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with("etc/architecture") {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                found = Some(text);
            }
        }
        assert_eq!(found.as_deref(), Some(expected));
    }
}

#[test]
fn an_empty_bed_takes_pushes_only_from_users_allowed_to_push() {
    let bed = Bed::start(None, Contents::Empty).unwrap();
    let layout = nodelet_testbed::prepare(&nodelet_testbed::cache_dir())
        .unwrap()
        .layout;
    let source = format!("oci:{}:tiny", layout.display());
    let push = |login: &nodelet_testbed::Login| {
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-cert-dir"])
            .arg(bed.cert_dir(&bed.token))
            .arg("--dest-creds")
            .arg(format!("{}:{}", login.username, login.password))
            .arg(&source)
            .arg(format!("docker://{}/pushed:v1", bed.token.host))
            .output()
            .unwrap()
    };
    let denied = push(&bed.puller);
    assert!(!denied.status.success(), "a pull-only user pushed");
    let pushed = push(&bed.pusher);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let inspect = skopeo(
        &bed,
        &bed.token,
        Some(&bed.puller),
        &[
            "inspect",
            "--raw",
            &format!("docker://{}/pushed:v1", bed.token.host),
        ],
    );
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}

#[test]
fn the_shared_bed_is_read_only() {
    let bed = Bed::shared().unwrap();
    let push = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:tiny", bed.layout.display()))
        .arg(format!("docker://{}/overwritten:v1", bed.plain.host))
        .output()
        .unwrap();
    assert!(!push.status.success(), "a push to the shared bed succeeded");
}

#[test]
fn an_owned_bed_stops_its_registries_when_dropped() {
    let bed = Bed::start(None, Contents::Empty).unwrap();
    let pids = [bed.plain.pid, bed.basic.pid, bed.token.pid];
    let dir = bed.dir.clone();
    drop(bed);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "registry {pid} still runs"
        );
    }
    assert!(!dir.exists(), "temporary bed directory left behind");
}

fn blob_json(layout: &std::path::Path, digest: &str) -> Value {
    let bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
