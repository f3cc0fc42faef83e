//! HTTP on hyper 1.x: accept, parse each request into an [`endpoint::Endpoint`],
//! check who is calling, then hand it to the one handler for that endpoint.
//!
//! Only this layer knows JSON bodies and status codes; it never touches redb
//! tables or atomics directly.

pub mod auth;
pub mod endpoint;
pub mod handlers;
pub mod io;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::App;
use endpoint::Endpoint;
use io::Body;

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight
/// requests up to `drain_timeout_s` to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(app.config.limits.connections_max));
    let header_read_timeout = Duration::from_secs(app.config.limits.header_read_timeout_s);
    tokio::pin!(shutdown);
    loop {
        // Wait for room before accepting: excess connections queue in the kernel.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(app, req).await) }
        });
        // A connection holds a permit only while it sends: one that sends no request
        // head within the timeout (idle keep-alive included) is closed.
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let drain = Duration::from_secs(app.config.limits.drain_timeout_s);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(
            drain_timeout_s = drain.as_secs(), "connections still open after the drain deadline"),
    }
}

/// One request, start to finish; every failure becomes a problem+json answer.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let endpoint = Endpoint::parse(req.method(), req.uri().path());
    let index = endpoint.as_ref().ok().map(|e| e.index);
    let authorized =
        endpoint.and_then(|e| Ok((auth::authorize(&app, req.headers(), e.access)?, e)));
    let response = match authorized {
        Ok((caller, endpoint)) => handlers::dispatch(&app, endpoint, caller, req).await,
        Err(p) => {
            // Refused unheard: read past the body (unkept) so the answer arrives.
            io::discard_body(req).await;
            Err(p)
        }
    };
    let response = response.unwrap_or_else(|p| {
        if p.status >= 500 {
            tracing::error!(status = p.status, detail = %p.detail, "request failed");
        }
        io::problem(&p)
    });
    app.http_metrics.record(
        index,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
