//! What to do about a registry failure, in terms of this binary's flags. `sensei-registry`'s
//! errors say what happened (the host, the request, a TLS failure, a 401); only the binary
//! knows which of its flags fix it, so the advice is added here, on the way out.

use std::error::Error;

use sensei_registry::{ErrorKind, RegistryError, SetupError};

/// Which binary is failing: the flags that fix a problem differ (`--plain-http` names hosts in
/// the bundler and is a switch in the loader; only the loader takes `--username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Bundler,
    Loader,
}

/// The advice for the first registry failure in `err`'s chain (or a CA file the client could
/// not use), if its kind has any.
pub fn registry_advice(err: &(dyn Error + 'static), binary: Binary) -> Option<&'static str> {
    if chain(err).any(|e| {
        e.downcast_ref::<SetupError>()
            .is_some_and(SetupError::is_ca_file)
    }) {
        return Some(
            "--ca-file must name a PEM file of one or more CA certificates, as the server's \
             administrator publishes them",
        );
    }
    advice(registry_kind(err)?, binary)
}

fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The flags that fix a failure of `kind`, or `None` when no flag does.
pub fn advice(kind: &ErrorKind, binary: Binary) -> Option<&'static str> {
    match (kind, binary) {
        (ErrorKind::GaveUp { last, .. }, _) => advice(last, binary),
        (ErrorKind::Tls(_), Binary::Bundler) => Some(
            "if the server's certificate comes from a private CA, pass the CA's certificate with \
             --ca-file PEM; if a registry speaks plain HTTP, name it with --plain-http HOST[:PORT]",
        ),
        (ErrorKind::Tls(_), Binary::Loader) => Some(
            "if the registry's certificate comes from a private CA, pass the CA's certificate \
             with --ca-file PEM; if the registry speaks plain HTTP, add --plain-http",
        ),
        (ErrorKind::Unauthorized, Binary::Bundler) => Some(
            "give the registry's credentials in Docker's config.json (`docker login HOST`), or \
             name another config.json with --registry-config",
        ),
        (ErrorKind::Unauthorized, Binary::Loader) => Some(
            "pass --username USER with --password-stdin, or name a Docker config.json holding \
             the registry's credentials with --registry-config",
        ),
        _ => None,
    }
}

/// The kind of the first registry failure in `err`'s chain: a [`RegistryError`] (boxed or
/// not) or a bare [`ErrorKind`] (a Helm repository download's cause).
pub fn registry_kind<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a ErrorKind> {
    chain(err).find_map(|e| {
        e.downcast_ref::<RegistryError>()
            .or_else(|| e.downcast_ref::<Box<RegistryError>>().map(AsRef::as_ref))
            .map(|r| &r.kind)
            .or_else(|| e.downcast_ref::<ErrorKind>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pulling: {source}")]
    struct Wrapper {
        source: Box<RegistryError>,
    }

    #[test]
    fn advice_is_found_under_wrappers_and_names_each_binarys_flags() {
        let wrapped = Wrapper {
            source: Box::new(RegistryError {
                registry: "registry.internal".into(),
                action: "fetching manifest x:1".into(),
                kind: ErrorKind::Tls("unknown issuer".into()),
            }),
        };
        let bundler = registry_advice(&wrapped, Binary::Bundler).unwrap();
        assert!(bundler.contains("--ca-file PEM") && bundler.contains("--plain-http HOST[:PORT]"));
        let loader = registry_advice(&wrapped, Binary::Loader).unwrap();
        assert!(loader.contains("--ca-file PEM") && loader.ends_with("add --plain-http"));
        let unauthorized = advice(&ErrorKind::Unauthorized, Binary::Loader).unwrap();
        assert!(unauthorized.contains("--password-stdin"));
        assert!(
            !advice(&ErrorKind::Unauthorized, Binary::Bundler)
                .unwrap()
                .contains("--username")
        );
        assert!(advice(&ErrorKind::NotFound, Binary::Bundler).is_none());
        let io = std::io::Error::other("disk");
        assert!(registry_advice(&io, Binary::Bundler).is_none());
    }
}
