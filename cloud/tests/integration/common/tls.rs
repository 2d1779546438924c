//! Certificates made in the tests (rcgen, on ring): a CA and a server certificate it signed.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA named `ca_name` and a certificate for `localhost` it signed, as PEM:
/// (CA certificate, server certificate, server key).
pub fn issue(ca_name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}
