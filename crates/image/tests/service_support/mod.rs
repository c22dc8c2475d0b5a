//! An image service on a temporary store that trusts the test bed: registry A is insecure
//! (plain HTTP), B and C are trusted through the bed's `certs.d`.

use std::collections::BTreeMap;
use std::path::Path;

use nodelet_image::pull::ImageService;
use nodelet_image::registry::{ClientOptions, RegistryClient, RegistryHosts, RegistrySettings};
use nodelet_image::store::ContentStore;
use nodelet_testbed::BedInfo;

pub fn service(bed: &BedInfo, root: &Path) -> ImageService {
    let mut settings = BTreeMap::new();
    settings.insert(
        bed.plain.host.clone(),
        RegistrySettings {
            insecure: true,
            ..Default::default()
        },
    );
    let hosts = RegistryHosts::new(settings, vec![bed.certs_d.clone()]);
    ImageService::new(
        ContentStore::open(root).unwrap(),
        RegistryClient::new(hosts, ClientOptions::default()),
    )
}
