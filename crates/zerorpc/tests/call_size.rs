//! What an open call costs the task that awaits it: the size of
//! `Client::call`'s future. Every idle call holds one, so it is most of a
//! client's memory per open channel (it was 1,992 bytes before the call
//! was driven by a hand-written future and the watched path was boxed,
//! 592 in release before `Client::call` itself was one; 320 since).

use zerorpc::{Client, ClientOptions};

/// Release and debug layouts differ a little; both stay under this.
const MAX_CALL_FUTURE: usize = 400;

#[tokio::test]
async fn an_open_call_is_small_for_its_caller() {
    // (no server needed: the future is measured, not run)
    for opts in [
        ClientOptions::default(),
        // watched calls keep their observation in a box
        ClientOptions {
            metrics: true,
            ..Default::default()
        },
    ] {
        let c = Client::connect_with(&["tcp://127.0.0.1:1"], opts)
            .await
            .expect("connect");
        let size = std::mem::size_of_val(&c.call("echo", vec![]));
        assert!(
            size <= MAX_CALL_FUTURE,
            "Client::call's future is {size} bytes (at most {MAX_CALL_FUTURE} expected)"
        );
    }
}
