//! A small in-process HTTP server for tests and benchmarks: serves a router on loopback from
//! its own runtime thread. [`LocalServer::kill`] drops every connection at once, as a crashed
//! server would.

use std::net::SocketAddr;

/// A running server.
pub struct LocalServer {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl LocalServer {
    /// Serves `router` on `bind` (e.g. `127.0.0.1:0`).
    pub fn start(router: axum::Router, bind: SocketAddr) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind(bind))?;
        let addr = listener.local_addr()?;
        rt.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, rt: Some(rt) })
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops at once: the listener and every open connection are dropped.
    pub fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
