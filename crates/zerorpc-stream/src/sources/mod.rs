//! Durable sources: spouts over the event bus (`zerorpc-bus`), whose
//! acked trees ack the bus message and whose failed trees replay it.
