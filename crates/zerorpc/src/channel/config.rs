//! [`ChannelConfig`]: a channel's timing and window, as given (a
//! [`super::Channel`] keeps it in nanoseconds).

use std::time::Duration;

/// Channel timing and window.
#[derive(Debug, Clone, Copy)]
pub struct ChannelConfig {
    /// Heartbeat interval (ZeroRPC's default is 5 s).
    pub heartbeat: Duration,
    /// Silent intervals after which the remote is lost. Checked, like
    /// zerorpc-python does, at each of our heartbeats: the remote is lost
    /// at the first one that finds it silent for more than `lost_after`
    /// intervals (so after 2 to 3 intervals with the default 2), its
    /// silence counted from our first heartbeat until it is first heard.
    /// That first grace is what a passive-heartbeat Python client needs: it
    /// sends its first heartbeat an interval after hearing ours.
    pub lost_after: u32,
    /// Bound on the wait for the first reply (client side; default 30 s).
    pub first_reply_timeout: Option<Duration>,
    /// Stream items we are willing to hold (receiver side): the credit
    /// window, so a stream buffers at most `window` items of whatever size
    /// they are. Default 100, like Python. This is the window toward a
    /// server that does not announce one (zerorpc-python, zerorpc-node):
    /// they send through a libzmq ROUTER, which silently drops messages
    /// beyond its 1000-message queue, so a window near that loses items
    /// when the client falls behind.
    pub window: u32,
    /// The window toward a server that announces it holds stream items
    /// back rather than dropping them (its first `STREAM` event carries a
    /// `window_max` header key; ours does): the smaller of this and what
    /// it announced, and never less than `window`. Default 1000, which
    /// streams small items about 1.7× faster than 100 between our own
    /// peers. Set it to `window` to keep one window for every server.
    pub announced_window: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            heartbeat: Duration::from_secs(5),
            lost_after: 2,
            first_reply_timeout: Some(Duration::from_secs(30)),
            window: 100,
            announced_window: 1000,
        }
    }
}

impl ChannelConfig {
    /// The most stream items a receiver may hold: its window, or the
    /// announced window if a server announces one (see
    /// [`ChannelConfig::announced_window`]).
    pub fn widest_window(&self) -> u32 {
        self.window.max(self.announced_window)
    }
}
