//! One module per subcommand: its arguments and what it does.
pub(crate) mod catalog;
pub(crate) mod csr;
pub(crate) mod info;
pub(crate) mod keys;
pub(crate) mod manage;
pub(crate) mod sign;
pub(crate) mod split;
pub(crate) mod timestamp;
pub(crate) mod verify;
