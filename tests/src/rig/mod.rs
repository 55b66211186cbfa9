//! The real test rig the end-to-end tests start themselves: `docker-registry` (plain, TLS with
//! htpasswd auth, or bearer-token auth with a loopback token service), skopeo seeding, a
//! fault-injecting proxy (which can also hold an upload mid-body until the test lets it go), a
//! static HTTP server for Helm chart repositories, Docker credential configs, and the paths of
//! the tools `scripts/setup.sh` installs. Everything listens on 127.0.0.1 only and is torn down
//! on drop.

mod docker_config;
mod http;
mod proxy;
mod registry;
mod static_server;
mod tls;
mod token;
pub mod tools;

use std::net::TcpListener;

pub use docker_config::{CredHelper, DockerConfig};
pub use http::Logged;
pub use proxy::{Failure, FaultProxy, Hold, Injected, RandomFaults};
pub use registry::{Registry, seed, seed_fixtures};
pub use static_server::StaticServer;
pub use tls::{TlsFiles, make_tls};
pub use token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenRequest, TokenServer};
pub use tools::{helm, helm4, missing_tool, path_with, require, rig_dir};

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}
