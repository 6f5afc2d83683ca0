//! Topologies: components, their parallelism, and the streams between them;
//! built from Flux YAML ([`crate::flux`]) or with [`TopologyBuilder`].

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::component::{BatchingBolt, Bolt, Outputs, Spout};
use crate::error::{BoxError, Error};
use crate::tuple::{Value, DEFAULT_STREAM};

/// A whole topology: what the runner runs and what a Flux file describes.
#[derive(Clone)]
pub struct Topology {
    /// Its name.
    pub name: String,
    /// Storm configuration (`topology.message.timeout.secs`,
    /// `topology.max.spout.pending`, `topology.multilang.serializer`,
    /// `topology.tick.tuple.freq.secs`, anything else the components read).
    pub config: serde_json::Map<String, Value>,
    /// Spouts, in declaration order.
    pub spouts: Vec<ComponentDef>,
    /// Bolts, in declaration order.
    pub bolts: Vec<ComponentDef>,
    /// Subscriptions of bolts to components' streams.
    pub streams: Vec<StreamDef>,
    /// Where shell components' commands run (a Flux file's directory, as
    /// Storm runs them in the topology's `resources/`); the current
    /// directory when `None`.
    pub base_dir: Option<std::path::PathBuf>,
}

/// One component of a topology.
#[derive(Clone)]
pub struct ComponentDef {
    /// Its id (Flux `id`).
    pub id: String,
    /// How instances are made.
    pub kind: ComponentKind,
    /// How many instances (tasks) run.
    pub parallelism: u32,
    /// Component-level configuration (Flux `configMethods`/`properties`
    /// are not interpreted; this holds what the runner understands, e.g.
    /// `topology.tick.tuple.freq.secs`).
    pub config: serde_json::Map<String, Value>,
}

/// A way to make a spout instance.
pub type SpoutFactory = Arc<dyn Fn() -> Result<Box<dyn Spout>, BoxError> + Send + Sync>;
/// A way to make a bolt instance.
pub type BoltFactory = Arc<dyn Fn() -> Result<Box<dyn Bolt>, BoxError> + Send + Sync>;

/// How a component's instances are made.
#[derive(Clone)]
pub enum ComponentKind {
    /// A multi-lang subprocess (Flux `FluxShellSpout`/`FluxShellBolt`):
    /// `command` runs in the topology file's directory (Storm runs it in
    /// the worker's `resources/`), emitting `outputs`.
    Shell {
        command: Vec<String>,
        outputs: Outputs,
    },
    /// A Rust component looked up in the [`Registry`] by `class` (Flux
    /// `className`) and made with `args` (Flux `constructorArgs`).
    Registered { class: String, args: Vec<Value> },
    /// A Rust spout made by a closure (the builder API).
    Spout(SpoutFactory),
    /// A Rust bolt made by a closure (the builder API).
    Bolt(BoltFactory),
}

/// A bolt's subscription to one stream of one component.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDef {
    /// Flux's optional `name`.
    pub name: Option<String>,
    /// The emitting component.
    pub from: String,
    /// The subscribing bolt.
    pub to: String,
    /// The stream (default `default`).
    pub stream: String,
    /// How tuples are spread over `to`'s tasks.
    pub grouping: Grouping,
}

/// Storm's stream groupings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Random, evenly spread.
    Shuffle,
    /// Same values of these fields, same task.
    Fields(Vec<String>),
    /// Every task gets a copy.
    All,
    /// The task with the lowest id gets all.
    Global,
    /// A task in the same worker if any, else shuffle (one worker here:
    /// shuffle).
    LocalOrShuffle,
    /// The emitter names the task (on a direct stream).
    Direct,
    /// No preference (shuffle).
    None,
}

/// Makes a registered spout class's instance from its Flux arguments.
pub(crate) type SpoutClass =
    Arc<dyn Fn(&[Value]) -> Result<Box<dyn Spout>, BoxError> + Send + Sync>;
/// Makes a registered bolt class's instance from its Flux arguments.
pub(crate) type BoltClass = Arc<dyn Fn(&[Value]) -> Result<Box<dyn Bolt>, BoxError> + Send + Sync>;

/// Rust components by class name, for Flux files (`className`) and the
/// CLI. A user's binary registers its own and runs them with
/// [`crate::runner`].
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) spouts: BTreeMap<String, SpoutClass>,
    pub(crate) bolts: BTreeMap<String, BoltClass>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a spout class; `make` gets the Flux `constructorArgs`.
    pub fn spout<S: Spout>(
        mut self,
        class: &str,
        make: impl Fn(&[Value]) -> Result<S, BoxError> + Send + Sync + 'static,
    ) -> Registry {
        self.spouts.insert(
            class.to_string(),
            Arc::new(move |args| Ok(Box::new(make(args)?) as Box<dyn Spout>)),
        );
        self
    }

    /// Registers a bolt class.
    pub fn bolt<B: Bolt>(
        mut self,
        class: &str,
        make: impl Fn(&[Value]) -> Result<B, BoxError> + Send + Sync + 'static,
    ) -> Registry {
        self.bolts.insert(
            class.to_string(),
            Arc::new(move |args| Ok(Box::new(make(args)?) as Box<dyn Bolt>)),
        );
        self
    }

    /// Registers a batching bolt class.
    pub fn batching_bolt<B: BatchingBolt>(
        self,
        class: &str,
        make: impl Fn(&[Value]) -> Result<B, BoxError> + Send + Sync + 'static,
    ) -> Registry {
        self.bolt(class, move |args| {
            Ok(crate::component::Batched::new(make(args)?))
        })
    }

    /// The registered class names (spouts, then bolts).
    pub fn classes(&self) -> Vec<String> {
        self.spouts
            .keys()
            .chain(self.bolts.keys())
            .cloned()
            .collect()
    }
}

/// Builds a [`Topology`] in Rust, in the style of Storm's
/// `TopologyBuilder`: `builder.bolt("count", ..., 4).fields("split",
/// ["word"])`.
pub struct TopologyBuilder {
    topology: Topology,
}

impl TopologyBuilder {
    /// An empty topology called `name`.
    pub fn new(name: &str) -> TopologyBuilder {
        TopologyBuilder {
            topology: Topology {
                name: name.to_string(),
                config: serde_json::Map::new(),
                spouts: Vec::new(),
                bolts: Vec::new(),
                streams: Vec::new(),
                base_dir: None,
            },
        }
    }

    /// Sets a configuration key.
    pub fn config(mut self, key: &str, value: impl Into<Value>) -> TopologyBuilder {
        self.topology.config.insert(key.to_string(), value.into());
        self
    }

    /// Adds a Rust spout made by `make`, with `parallelism` instances.
    pub fn spout<S: Spout>(
        mut self,
        id: &str,
        parallelism: u32,
        make: impl Fn() -> S + Send + Sync + 'static,
    ) -> TopologyBuilder {
        self.topology.spouts.push(ComponentDef {
            id: id.to_string(),
            kind: ComponentKind::Spout(Arc::new(move || Ok(Box::new(make()) as Box<dyn Spout>))),
            parallelism,
            config: serde_json::Map::new(),
        });
        self
    }

    /// Adds a Rust bolt made by `make`; follow with its groupings.
    pub fn bolt<B: Bolt>(
        mut self,
        id: &str,
        parallelism: u32,
        make: impl Fn() -> B + Send + Sync + 'static,
    ) -> TopologyBuilder {
        self.topology.bolts.push(ComponentDef {
            id: id.to_string(),
            kind: ComponentKind::Bolt(Arc::new(move || Ok(Box::new(make()) as Box<dyn Bolt>))),
            parallelism,
            config: serde_json::Map::new(),
        });
        self
    }

    /// Adds a shell (multi-lang) spout.
    pub fn shell_spout(
        mut self,
        id: &str,
        parallelism: u32,
        command: &[&str],
        outputs: Outputs,
    ) -> TopologyBuilder {
        let c = shell(id, parallelism, command, outputs);
        self.topology.spouts.push(c);
        self
    }

    /// Adds a shell (multi-lang) bolt; follow with its groupings.
    pub fn shell_bolt(
        mut self,
        id: &str,
        parallelism: u32,
        command: &[&str],
        outputs: Outputs,
    ) -> TopologyBuilder {
        let c = shell(id, parallelism, command, outputs);
        self.topology.bolts.push(c);
        self
    }

    /// Subscribes the last added bolt to `from`'s stream with `grouping`.
    pub fn grouping(mut self, from: &str, stream: &str, grouping: Grouping) -> TopologyBuilder {
        let to = self
            .topology
            .bolts
            .last()
            .map(|b| b.id.clone())
            .unwrap_or_default();
        self.topology.streams.push(StreamDef {
            name: None,
            from: from.to_string(),
            to,
            stream: stream.to_string(),
            grouping,
        });
        self
    }

    /// Shuffle grouping on `from`'s default stream.
    pub fn shuffle(self, from: &str) -> TopologyBuilder {
        self.grouping(from, DEFAULT_STREAM, Grouping::Shuffle)
    }

    /// Fields grouping on `from`'s default stream.
    pub fn fields<S: Into<String>>(
        self,
        from: &str,
        fields: impl IntoIterator<Item = S>,
    ) -> TopologyBuilder {
        let fields = fields.into_iter().map(Into::into).collect();
        self.grouping(from, DEFAULT_STREAM, Grouping::Fields(fields))
    }

    /// All grouping on `from`'s default stream.
    pub fn all(self, from: &str) -> TopologyBuilder {
        self.grouping(from, DEFAULT_STREAM, Grouping::All)
    }

    /// Global grouping on `from`'s default stream.
    pub fn global(self, from: &str) -> TopologyBuilder {
        self.grouping(from, DEFAULT_STREAM, Grouping::Global)
    }

    /// The topology (checked when it is run).
    pub fn build(self) -> Topology {
        self.topology
    }
}

fn shell(id: &str, parallelism: u32, command: &[&str], outputs: Outputs) -> ComponentDef {
    ComponentDef {
        id: id.to_string(),
        kind: ComponentKind::Shell {
            command: command.iter().map(|s| s.to_string()).collect(),
            outputs,
        },
        parallelism,
        config: serde_json::Map::new(),
    }
}

impl Topology {
    /// Checks the topology's shape without making components: unique ids,
    /// known components in streams, bolts as stream targets, parallelism
    /// above 0. (Field names are checked by the runner once instances
    /// declare their outputs.)
    pub fn validate(&self) -> Result<(), Error> {
        let mut ids = std::collections::BTreeSet::new();
        for c in self.spouts.iter().chain(&self.bolts) {
            if !ids.insert(c.id.as_str()) {
                return Err(Error::Topology(format!(
                    "two components are called {:?}",
                    c.id
                )));
            }
            if c.parallelism == 0 {
                return Err(Error::Topology(format!("{}: parallelism 0", c.id)));
            }
        }
        for s in &self.streams {
            if !ids.contains(s.from.as_str()) {
                return Err(Error::Topology(format!(
                    "stream {} -> {}: no component {:?}",
                    s.from, s.to, s.from
                )));
            }
            if !self.bolts.iter().any(|b| b.id == s.to) {
                return Err(Error::Topology(format!(
                    "stream {} -> {}: {:?} is not a bolt",
                    s.from, s.to, s.to
                )));
            }
        }
        Ok(())
    }
}
