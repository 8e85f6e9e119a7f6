//! A Juju 3.6 agent emulator for testing charms without a controller.
//!
//! It runs a charm's `dispatch` exactly as the uniter does and answers every
//! hook tool the charm calls, with Juju's syntax, output formats, exit codes,
//! permission rules and commit semantics. The contract it follows is
//! `juju-hook-contract.md` in the project's shared reference.
//!
//! * [`world`]: the controller: models, applications, units, relations,
//!   storage and secrets (`world::model`), the operator's commands, the hook
//!   sequencer, each hook's snapshot, and the commit of what it did;
//! * [`machine`]: emulated machines (network, mount, pid, UTS and IPC
//!   namespaces) for units that must look like separate hosts;
//! * [`runner`]: one hook process with Juju's environment, on the test host
//!   or in a machine;
//! * [`context`]: the per-hook snapshot shared with the tools, answered by
//!   [`agent_socket`] during a hook (a file for `juju-exec`);
//! * [`tools`]: the hook tools themselves; [`args`] and [`format`] are
//!   juju/cmd's flag parsing and output formatting;
//! * [`exec`]: the `juju-exec` client.
//!
//! The `juju-emulator` binary is the multi-call hook tool: linked under every
//! tool name in each unit's tools directory, and as `juju-exec`; it is also
//! each machine's init.

pub mod agent_socket;
pub mod args;
pub mod charm;
pub mod context;
pub mod exec;
pub mod format;
pub mod machine;
pub mod runner;
pub mod tools;
pub mod world;

pub use machine::MachineSpec;
pub use world::{DeployOptions, Invocation, StorageRequest, UnitOptions, World, LEADERSHIP_LEASE};
