//! `broker_url = "memory"`: one node, so there is nothing to cross. The hub
//! fans out locally and no broker exists; [`connect`](super::connect)
//! answers `None`. This module only documents that choice.
