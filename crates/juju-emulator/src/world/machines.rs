//! Units on emulated machines ([`crate::machine`]): where their hooks run,
//! whether their agent can run hooks at all, and the operator's commands on
//! machines. A crashed or partitioned machine's agent cannot reach the
//! controller, so its units' hooks (and `juju-exec` requests) wait in the
//! queue until it is restarted or healed; the rest of the model goes on.
//! After a reboot Juju runs `start` on every unit that had started (the
//! uniter's reboot detection), before anything else queued for it.
//! A leader whose machine stays unreachable loses its lease
//! ([`LEADERSHIP_LEASE`]): the controller elects a reachable unit.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::model::{Invocation, Unit};
use super::World;
use crate::machine::net::Bridge;
use crate::machine::{Machine, MachineSpec};
use crate::runner::Site;

/// How long after its machine became unreachable a leader's lease is gone.
/// Juju guarantees a lease for 30 s after the leader's agent last claimed
/// it (`is-leader`, §4.13) and the agent refreshes it every 30 s, so an
/// agent that died lets it go within a minute; then the controller elects
/// another unit, which gets `leader-elected`, the others
/// `leader-settings-changed`.
pub const LEADERSHIP_LEASE: Duration = Duration::from_secs(60);

/// How long a clean shutdown waits for processes to exit before killing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl World {
    /// The emulated machine `id`.
    pub fn machine(&self, id: &str) -> Result<&Machine> {
        self.machines
            .get(id)
            .ok_or_else(|| anyhow!("machine {id:?} not found (units on the test host have none)"))
    }

    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values()
    }

    /// The emulated machine `unit` runs on.
    pub fn machine_of(&self, unit: &str) -> Result<&Machine> {
        let id = self.unit(unit)?.machine.clone();
        self.machine(&id)
    }

    /// The bridge the machines share, made on first use. Consumer hosts
    /// join it to reach the machines (scenarios' `Netns::on_bridge`).
    pub fn machine_network(&mut self) -> Result<&mut Bridge> {
        if self.network.is_none() {
            self.network = Some(Bridge::new()?);
        }
        Ok(self.network.as_mut().expect("just made"))
    }

    /// An unused address on the machines' bridge, for a consumer host.
    pub fn lease_address(&mut self) -> Result<Ipv4Addr> {
        self.machine_network()?.lease()
    }

    /// Kills every process on machine `id` at once, as a power loss does.
    /// Its units' hooks wait until [`World::restart_machine`].
    pub fn crash_machine(&mut self, id: &str) -> Result<()> {
        self.machine_mut(id)?.crash()?;
        self.agent.forget(id);
        Ok(())
    }

    /// Boots machine `id` again: a clean shutdown first if it is up (SIGTERM,
    /// then SIGKILL after 10 s), then fresh `/run`, `/tmp`, `/proc` and
    /// kernel views; its disk (private and layered directories, storage)
    /// is as it was. Queues `start` for every unit that had started.
    pub fn restart_machine(&mut self, id: &str) -> Result<()> {
        let machine = self.machine_mut(id)?;
        machine.shutdown(SHUTDOWN_GRACE)?;
        machine.boot()?;
        self.agent.forget(id);
        let units: Vec<(String, bool, bool)> = self
            .apps
            .values()
            .flat_map(|a| a.units.values())
            .filter(|u| u.machine == id && !u.departing)
            .map(|u| (u.name.clone(), u.started, u.interrupted))
            .collect();
        for (unit, started, interrupted) in units {
            self.unit_mut(&unit)?.interrupted = false;
            if !started {
                continue;
            }
            // `start` before anything queued for the unit, but after the
            // hook the crash interrupted (which is first in its queue).
            let mine: Vec<usize> = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, i)| i.unit == unit)
                .map(|(n, _)| n)
                .collect();
            let at = match (interrupted, mine.as_slice()) {
                (true, [first, ..]) => first + 1,
                (false, [first, ..]) => *first,
                (_, []) => 0,
            };
            self.queue.insert(
                at,
                Invocation {
                    unit,
                    hook: "start".into(),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    /// Crashes machine `id` `after` from now, whatever runs then: a hook
    /// running on it is killed with everything else, and runs again first
    /// after [`World::restart_machine`], as Juju reruns an interrupted hook.
    pub fn crash_machine_after(&mut self, id: &str, after: Duration) -> Result<()> {
        self.machine(id)?.schedule_crash(after)
    }

    /// Notices machines whose init died (a scheduled crash).
    pub(super) fn refresh_machines(&mut self) -> Result<()> {
        let mut crashed = Vec::new();
        for machine in self.machines.values_mut() {
            if machine.refresh()? {
                crashed.push(machine.id.clone());
            }
        }
        for id in crashed {
            self.agent.forget(&id);
        }
        Ok(())
    }

    /// Takes machine `id`'s link down: nothing reaches it or leaves it, its
    /// processes keep running, and its agent runs no hook until healed.
    pub fn partition_machine(&mut self, id: &str) -> Result<()> {
        self.machine_mut(id)?.set_partitioned(true)
    }

    /// Brings machine `id`'s link back up; its waiting hooks run again.
    /// Neighbour entries that failed during the cut are forgotten on the
    /// test host and the other machines (hosts of their own, such as
    /// consumers, relearn them on their next attempts).
    pub fn heal_machine(&mut self, id: &str) -> Result<()> {
        self.machine_mut(id)?.set_partitioned(false)?;
        let address = self.machine(id)?.address();
        if let Some(bridge) = &self.network {
            bridge.forget_neighbour(address);
        }
        for other in self.machines.values().filter(|m| m.id != id) {
            other.forget_neighbour(address);
        }
        Ok(())
    }

    /// Shuts down and removes machine `id` once no unit is left on it (its
    /// files stay in the world's directory for inspection).
    pub(super) fn destroy_machine_if_empty(&mut self, id: &str) -> Result<()> {
        let in_use = self
            .apps
            .values()
            .flat_map(|a| a.units.values())
            .any(|u| u.machine == id);
        if in_use {
            return Ok(());
        }
        if let Some(mut machine) = self.machines.remove(id) {
            machine.shutdown(SHUTDOWN_GRACE)?;
        }
        Ok(())
    }

    pub(super) fn machine_mut(&mut self, id: &str) -> Result<&mut Machine> {
        self.machines
            .get_mut(id)
            .ok_or_else(|| anyhow!("machine {id:?} not found"))
    }

    /// Makes machine `id` for a unit (booted once its storage is known).
    pub(super) fn new_machine(&mut self, id: u32, spec: MachineSpec) -> Result<&mut Machine> {
        let dir = self.root.join("machines").join(id.to_string());
        let shared = vec![self.root.clone()];
        let tool_binary = self.tool_binary.clone();
        let bridge = self.machine_network()?;
        let machine = Machine::create(id, bridge, &dir, spec, shared, &tool_binary)?;
        let socket = machine.juju_data().join(crate::exec::SOCKET);
        self.agent.listen(Some(id.to_string()), &socket)?;
        self.machines.insert(id.to_string(), machine);
        Ok(self
            .machines
            .get_mut(&id.to_string())
            .expect("just inserted"))
    }

    /// Whether `unit`'s agent can run hooks now: always on the test host;
    /// on a machine, while it is up and connected.
    pub(super) fn reachable(&self, unit: &str) -> bool {
        let Ok(u) = self.unit(unit) else {
            return false;
        };
        self.machine_reachable(Some(&u.machine))
    }

    /// Elects a new leader for every application whose leader's machine has
    /// been unreachable for the lease ([`LEADERSHIP_LEASE`]) (when another unit's is
    /// reachable). Called while the agents run ([`World::run_until`]).
    pub(super) fn expire_leadership(&mut self) {
        let now = Instant::now();
        for machine in self.machines.values() {
            if machine.is_reachable() {
                self.agent.unreachable_since.remove(&machine.id);
            } else {
                self.agent
                    .unreachable_since
                    .entry(machine.id.clone())
                    .or_insert(now);
            }
        }
        let apps: Vec<String> = self.apps.keys().cloned().collect();
        for app in apps {
            let Some(leader) = self.apps[&app].leader.clone() else {
                continue;
            };
            let Some(machine) = self.apps[&app]
                .units
                .get(&leader)
                .map(|u| u.machine.clone())
            else {
                continue;
            };
            let expired = self
                .agent
                .unreachable_since
                .get(&machine)
                .is_some_and(|since| now.duration_since(*since) >= self.agent.leadership_lease);
            if !expired {
                continue;
            }
            let candidates: Vec<String> = self.apps[&app]
                .units
                .values()
                .filter(|u| u.name != leader && !u.departing)
                .filter(|u| self.machine_reachable(Some(&u.machine)))
                .map(|u| u.name.clone())
                .collect();
            let Some(new_leader) = candidates.first().cloned() else {
                continue;
            };
            self.apps.get_mut(&app).expect("app").leader = Some(new_leader.clone());
            self.enqueue_hook(&new_leader, "leader-elected");
            let others: Vec<String> = self.apps[&app]
                .units
                .keys()
                .filter(|u| **u != new_leader)
                .cloned()
                .collect();
            for other in others {
                self.enqueue_hook(&other, "leader-settings-changed");
            }
        }
    }

    /// Whether requests from machine `id` (`None`: the test host) can run.
    pub(super) fn machine_reachable(&self, id: Option<&str>) -> bool {
        match id.and_then(|id| self.machines.get(id)) {
            Some(machine) => machine.is_reachable(),
            None => true,
        }
    }

    /// Where `unit`'s hooks run.
    pub(super) fn site_of(&self, unit: &Unit) -> Result<Site> {
        match self.machines.get(&unit.machine) {
            None => Ok(Site::Host),
            Some(machine) => {
                if !machine.is_reachable() {
                    anyhow::bail!(
                        "machine {} of {} is {}: its agent runs no hook",
                        machine.id,
                        unit.name,
                        if machine.is_up() {
                            "partitioned"
                        } else {
                            "down"
                        }
                    );
                }
                let init_pid = machine.init_pid().expect("up");
                Ok(Site::Machine { init_pid })
            }
        }
    }

    /// Mounts a unit's storage source in its machine at `location`.
    pub(super) fn mount_storage(
        &mut self,
        machine: &str,
        source: &Path,
        location: &str,
    ) -> Result<()> {
        let bind = source.is_dir();
        self.machine_mut(machine)?
            .add_storage(crate::machine::plan::StorageMount {
                source: source.to_path_buf(),
                target: location.into(),
                bind,
            })
    }

    pub(super) fn unmount_storage(&mut self, machine: &str, location: &str) -> Result<()> {
        match self.machines.get_mut(machine) {
            Some(m) => m.remove_storage(Path::new(location)),
            None => Ok(()),
        }
    }
}
