//! The pod's `hostPort`s, as its sandbox passes them to the network.

use nodelet_api::k8s::api::core::v1::PodSpec;
use nodelet_runtime::cni::PortMapping;

/// The `hostPort`s of every container (init containers included, as upstream), for the
/// network's `portmap` plugin. A host-network pod has none to map.
pub fn host_ports(spec: &PodSpec) -> Vec<PortMapping> {
    if spec.host_network.unwrap_or(false) {
        return Vec::new();
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            let host_port = u16::try_from(port.host_port?).ok().filter(|p| *p > 0)?;
            Some(PortMapping {
                host_port,
                container_port: u16::try_from(port.container_port).ok()?,
                protocol: port.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_ip: port.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::{Container, ContainerPort};

    fn spec(ports: Vec<ContainerPort>, host_network: bool) -> PodSpec {
        PodSpec {
            host_network: Some(host_network),
            containers: vec![Container {
                name: "main".into(),
                ports: Some(ports),
                ..Container::default()
            }],
            ..PodSpec::default()
        }
    }

    #[test]
    fn only_host_ports_are_mapped() {
        let ports = vec![
            ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                ..ContainerPort::default()
            },
            ContainerPort {
                container_port: 53,
                host_port: Some(5353),
                protocol: Some("UDP".into()),
                host_ip: Some("127.0.0.1".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                container_port: 9090,
                ..ContainerPort::default()
            },
        ];
        let mapped = host_ports(&spec(ports.clone(), false));
        assert_eq!(
            mapped,
            vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                    host_ip: String::new(),
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: "udp".into(),
                    host_ip: "127.0.0.1".into(),
                },
            ]
        );
        assert!(host_ports(&spec(ports, true)).is_empty());
    }
}
