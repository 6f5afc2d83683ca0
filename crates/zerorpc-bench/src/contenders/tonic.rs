//! tonic (gRPC over HTTP/2, without code generation): calls and
//! idle-channel memory.

use crate::*;

/// A tonic server on loopback and a channel connected to it.
pub(crate) async fn tonic_pair() -> (tonic::transport::Channel, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(grpc::BenchService)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("tonic connect");
    (channel, server)
}

pub(crate) static TONIC_SLEEPING: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

pub(crate) async fn idle_tonic(n: usize) -> f64 {
    use grpc::Num;
    use tonic_prost::ProstCodec;
    let (channel, _server) = tonic_pair().await;
    idle_common(
        n,
        || {
            let ch = channel.clone();
            tokio::spawn(async move {
                let mut g = tonic::client::Grpc::new(ch);
                if g.ready().await.is_ok() {
                    let _: Result<tonic::Response<Num>, _> = g
                        .unary(
                            tonic::Request::new(Num { x: 3_600_000 }),
                            http::uri::PathAndQuery::from_static("/bench.Bench/Sleep"),
                            ProstCodec::<Num, Num>::default(),
                        )
                        .await;
                }
            })
        },
        || TONIC_SLEEPING.load(std::sync::atomic::Ordering::SeqCst),
    )
    .await
}

/// A gRPC echo service for tonic, written without code generation (so no
/// `protoc` is needed): prost messages and the routing tonic's generated
/// code would contain.
pub(crate) mod grpc {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use futures::future::BoxFuture;
    use tonic::server::{Grpc, NamedService, UnaryService};
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Num {
        #[prost(int64, tag = "1")]
        pub x: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Blob {
        #[prost(bytes = "vec", tag = "1")]
        pub b: Vec<u8>,
    }

    #[derive(Clone)]
    pub struct BenchService;

    impl NamedService for BenchService {
        const NAME: &'static str = "bench.Bench";
    }

    struct Echo;
    impl UnaryService<Num> for Echo {
        type Response = Num;
        type Future = BoxFuture<'static, Result<Response<Num>, Status>>;
        fn call(&mut self, req: Request<Num>) -> Self::Future {
            Box::pin(async move { Ok(Response::new(req.into_inner())) })
        }
    }

    struct Sleep;
    impl UnaryService<Num> for Sleep {
        type Response = Num;
        type Future = BoxFuture<'static, Result<Response<Num>, Status>>;
        fn call(&mut self, req: Request<Num>) -> Self::Future {
            super::TONIC_SLEEPING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let n = req.into_inner();
                tokio::time::sleep(std::time::Duration::from_millis(n.x.max(0) as u64)).await;
                Ok(Response::new(n))
            })
        }
    }

    struct EchoBlob;
    impl UnaryService<Blob> for EchoBlob {
        type Response = Blob;
        type Future = BoxFuture<'static, Result<Response<Blob>, Status>>;
        fn call(&mut self, req: Request<Blob>) -> Self::Future {
            Box::pin(async move { Ok(Response::new(req.into_inner())) })
        }
    }

    impl tower_service::Service<http::Request<tonic::body::Body>> for BenchService {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            match req.uri().path() {
                "/bench.Bench/Echo" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Num, Num>::default())
                        .unary(Echo, req)
                        .await)
                }),
                "/bench.Bench/Sleep" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Num, Num>::default())
                        .unary(Sleep, req)
                        .await)
                }),
                "/bench.Bench/Blob" => Box::pin(async move {
                    Ok(Grpc::new(ProstCodec::<Blob, Blob>::default())
                        .unary(EchoBlob, req)
                        .await)
                }),
                _ => {
                    Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) })
                }
            }
        }
    }
}

pub(crate) async fn tonic_bench(seq: usize, conc: usize) -> Row {
    use grpc::{Blob, Num};
    use http::uri::PathAndQuery;
    use tonic_prost::ProstCodec;
    let (channel, server) = tonic_pair().await;
    async fn echo(ch: &tonic::transport::Channel, x: i64) {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.expect("ready");
        let _: tonic::Response<Num> = g
            .unary(
                tonic::Request::new(Num { x }),
                PathAndQuery::from_static("/bench.Bench/Echo"),
                ProstCodec::<Num, Num>::default(),
            )
            .await
            .expect("call");
    }
    async fn blob(ch: &tonic::transport::Channel) {
        let mut g = tonic::client::Grpc::new(ch.clone());
        g.ready().await.expect("ready");
        let _: tonic::Response<Blob> = g
            .unary(
                tonic::Request::new(Blob { b: vec![7u8; BIG] }),
                PathAndQuery::from_static("/bench.Bench/Blob"),
                ProstCodec::<Blob, Blob>::default(),
            )
            .await
            .expect("call");
    }
    let row = call_workloads("tonic (gRPC over HTTP/2)", seq, conc, channel, |ch, big| {
        Box::pin(async move {
            if big {
                blob(&ch).await;
            } else {
                echo(&ch, 1).await;
            }
        })
    })
    .await;
    server.abort();
    row
}
