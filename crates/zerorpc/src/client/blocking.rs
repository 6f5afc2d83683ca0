//! [`BlockingClient`]: the client for programs without an async runtime.

use super::*;

/// A client for programs without an async runtime: runs its own.
pub struct BlockingClient {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient").finish()
    }
}

impl BlockingClient {
    /// Connects to `endpoint`.
    pub fn connect(endpoint: &str) -> Result<Self, Error> {
        BlockingClient::connect_with(&[endpoint], ClientOptions::default())
    }

    /// Connects with options.
    pub fn connect_with(endpoints: &[&str], opts: ClientOptions) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::Transport(zmtp::ZmtpError::Io(e)))?;
        let client = rt.block_on(Client::connect_with(endpoints, opts))?;
        Ok(BlockingClient { rt, client })
    }

    /// Calls a method and waits for the result.
    pub fn call(&self, method: &str, args: Vec<Value>) -> Result<Value, Error> {
        self.rt.block_on(self.client.call(method, args))
    }

    /// Calls a streaming method; the iterator yields items as they arrive.
    pub fn call_stream(
        &self,
        method: &str,
        args: Vec<Value>,
    ) -> Result<impl Iterator<Item = Result<Value, Error>> + '_, Error> {
        let stream = self.rt.block_on(self.client.call_stream(method, args))?;
        let mut stream = Box::pin(stream);
        Ok(std::iter::from_fn(move || {
            self.rt.block_on(futures::StreamExt::next(&mut stream))
        }))
    }
}
