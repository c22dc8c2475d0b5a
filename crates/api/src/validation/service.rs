//! Service validation (the parts a single-node cluster uses): an RFC 1035 name, ports
//! (named when several, unique names, unique port+protocol, valid target ports), selector
//! labels, type, session affinity, `externalName`, and an immutable cluster IP.

use std::collections::BTreeSet;

use super::container::validate_port_num_or_name;
use super::meta::{
    validate_labels, validate_object_meta, validate_object_meta_update, validate_qualified_name,
};
use crate::field_errors::{BadValue, FieldError, FieldErrors, Path, go_quote};
use crate::k8s::api::core::v1::{Service, ServicePort};
use crate::k8s::apimachinery::pkg::util::intstr::IntOrString;
use crate::names;

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Go's `%#v` of the `core.ServicePort{Protocol, Port}` key upstream reports for a duplicate.
fn go_port_key(p: &ServicePort) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(s(&p.protocol)),
        p.port
    )
}

pub fn validate_service(svc: &Service) -> FieldErrors {
    let mut errs = validate_object_meta(
        &svc.metadata,
        true,
        names::name_is_dns1035_label,
        &Path::new("metadata"),
    );
    let spec = svc.spec.clone().unwrap_or_default();
    let sp = Path::new("spec");
    let ty = s(&spec.type_);
    let headless = s(&spec.cluster_ip) == "None";
    let ports = spec.ports.clone().unwrap_or_default();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required(&sp.child("ports"), ""));
    }
    let pp = sp.child("ports");
    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = pp.index(i);
        let name = s(&port.name);
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if !name.is_empty() {
            for m in names::is_dns1123_label(name) {
                errs.push(FieldError::invalid(&p.child("name"), name, m));
            }
            if !port_names.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        for m in names::is_valid_port_num(port.port.into()) {
            errs.push(FieldError::invalid(&p.child("port"), port.port, m));
        }
        match s(&port.protocol) {
            "" => errs.push(FieldError::required(&p.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                &p.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        let target = port.target_port.clone().unwrap_or(IntOrString::Int(0));
        errs.extend(validate_port_num_or_name(&target, &p.child("targetPort")));
        if let Some(ap) = &port.app_protocol {
            errs.extend(validate_qualified_name(ap, &p.child("appProtocol")));
        }
    }
    errs.extend(validate_labels(
        spec.selector.as_ref(),
        &sp.child("selector"),
    ));
    let mut keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !keys.insert((s(&port.protocol).to_owned(), port.port)) {
            errs.push(FieldError::duplicate(
                &pp.index(i),
                BadValue::Raw(go_port_key(port)),
            ));
        }
    }
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&ty) {
        errs.push(FieldError::not_supported(&sp.child("type"), ty, &types));
    }
    let affinity = s(&spec.session_affinity);
    if !["ClientIP", "None"].contains(&affinity) {
        errs.push(FieldError::not_supported(
            &sp.child("sessionAffinity"),
            affinity,
            &["ClientIP", "None"],
        ));
    }
    if ty == "ExternalName" {
        let name = s(&spec.external_name);
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            errs.push(FieldError::required(&sp.child("externalName"), ""));
        } else {
            for m in names::is_dns1123_subdomain(trimmed) {
                errs.push(FieldError::invalid(&sp.child("externalName"), name, m));
            }
        }
    }
    let ip = s(&spec.cluster_ip);
    if !ip.is_empty() && ip != "None" && ip.parse::<std::net::IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            &sp.child("clusterIPs").index(0),
            ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    errs
}

/// Update: metadata rules; a cluster IP once allocated may not change.
pub fn validate_service_update(new: &Service, old: &Service) -> FieldErrors {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    let old_ip = old
        .spec
        .as_ref()
        .map(|sp| s(&sp.cluster_ip).to_owned())
        .unwrap_or_default();
    let new_ip = new
        .spec
        .as_ref()
        .map(|sp| s(&sp.cluster_ip).to_owned())
        .unwrap_or_default();
    if !old_ip.is_empty() && old_ip != new_ip {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("clusterIPs").index(0),
            new_ip.as_str(),
            "may not change once set",
        ));
    }
    errs.extend(validate_service(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata":{"name":"fooservice","namespace":"d"},"spec":spec}),
        )
        .unwrap()
    }

    #[test]
    fn service_rules() {
        let cases = [
            (
                json!({"type":"ClusterIP","sessionAffinity":"None","ports":[{"port":8765,"targetPort":8080,"protocol":"TCP"}],"selector":{"app":"web"}}),
                vec![],
            ),
            (
                json!({"type":"ClusterIP","sessionAffinity":"None"}),
                vec!["spec.ports: Required value"],
            ),
            (
                json!({"type":"ClusterIP","sessionAffinity":"None","clusterIP":"None"}),
                vec![],
            ),
            (
                json!({"type":"ClusterIP","sessionAffinity":"None","ports":[{"port":80,"targetPort":80,"protocol":"TCP"},{"port":443,"targetPort":443,"protocol":"TCP","name":"https"}]}),
                vec!["spec.ports[0].name: Required value"],
            ),
            (
                json!({"type":"ClusterIP","sessionAffinity":"None","ports":[{"port":0,"targetPort":80,"protocol":"HTTP"}]}),
                vec![
                    "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                    "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ],
            ),
            (
                json!({"type":"ClusterIP","sessionAffinity":"None","ports":[{"port":80,"targetPort":80,"protocol":"TCP","name":"a"},{"port":80,"targetPort":81,"protocol":"TCP","name":"b"}]}),
                vec![
                    "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
                ],
            ),
            (
                json!({"type":"Magic","sessionAffinity":"None","ports":[{"port":80,"targetPort":80,"protocol":"TCP"}]}),
                vec![
                    "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                ],
            ),
            (
                json!({"type":"ExternalName","sessionAffinity":"None","externalName":"example.com."}),
                vec![],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<String> = validate_service(&svc(spec.clone())).messages();
            assert_eq!(got, want, "{spec}");
        }
        let bad_name: Service = serde_json::from_value(json!({"metadata":{"name":"1svc","namespace":"d"},"spec":{"type":"ClusterIP","sessionAffinity":"None","clusterIP":"None"}})).unwrap();
        assert_eq!(validate_service(&bad_name).len(), 1);
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let mut old = svc(
            json!({"type":"ClusterIP","sessionAffinity":"None","clusterIP":"10.96.0.10","ports":[{"port":80,"targetPort":80,"protocol":"TCP"}]}),
        );
        old.metadata.resource_version = Some("1".into());
        let mut new = old.clone();
        new.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.11".into());
        assert_eq!(
            validate_service_update(&new, &old).aggregate().unwrap(),
            "spec.clusterIPs[0]: Invalid value: \"10.96.0.11\": may not change once set"
        );
    }
}
