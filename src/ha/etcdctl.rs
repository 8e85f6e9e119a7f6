//! `etcdctl` (API v3, etcd 3.4), thin. Credentials go in the environment
//! (`ETCDCTL_USER`, `ETCDCTL_PASSWORD`) and new users' passwords on stdin
//! (`--interactive=false`): never in argv, where every local user can read
//! them in `/proc/<pid>/cmdline`. Errors show the arguments (no secret
//! there) and etcdctl's message.
//!
//! Not protected by authentication in 3.4: `member list`, `endpoint
//! health`. `member add/remove/promote` and the user commands need root.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::membership::{EtcdMember, EtcdView};
use super::DCS_NAMESPACE;
use crate::secret::Password;

pub const ROOT_USER: &str = "root";

/// etcdctl against some endpoints, as some user (or anonymously).
#[derive(Debug, Clone)]
pub struct Etcdctl {
    pub endpoints: Vec<String>,
    pub user: Option<(String, Password)>,
    pub program: String,
    /// The CA that etcd's certificate must chain to, over HTTPS
    /// (`ETCDCTL_CACERT`).
    pub cacert: Option<PathBuf>,
}

impl Etcdctl {
    pub fn new(endpoints: Vec<String>, user: Option<(String, Password)>) -> Self {
        Self {
            endpoints,
            user,
            program: "etcdctl".into(),
            cacert: None,
        }
    }

    /// This etcdctl, verifying etcd's certificate with `ca` (when given).
    pub fn trusting(mut self, ca: Option<&Path>) -> Self {
        self.cacert = ca.map(Path::to_path_buf);
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.env_remove("ETCDCTL_USER")
            .env_remove("ETCDCTL_PASSWORD")
            .env_remove("ETCDCTL_CACERT")
            .env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", self.endpoints.join(","))
            .env("ETCDCTL_DIAL_TIMEOUT", "3s")
            .env("ETCDCTL_COMMAND_TIMEOUT", "10s")
            .args(args)
            .stdin(Stdio::null());
        if let Some(ca) = &self.cacert {
            c.env("ETCDCTL_CACERT", ca);
        }
        if let Some((user, password)) = &self.user {
            c.env("ETCDCTL_USER", user)
                .env("ETCDCTL_PASSWORD", password.expose());
        }
        c
    }

    /// Runs `etcdctl args`, with `stdin` fed in; stdout on success.
    fn run(&self, args: &[&str], stdin: Option<&Password>) -> Result<String> {
        let mut c = self.command(args);
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shown = format!("etcdctl {}", args.join(" "));
        let mut child = c
            .spawn()
            .with_context(|| format!("could not start {shown}"))?;
        if let Some(secret) = stdin {
            let mut pipe = child.stdin.take().expect("piped");
            // An etcdctl that exits early says why on stderr: a write error
            // here (broken pipe) adds nothing.
            let _ = pipe.write_all(format!("{}\n", secret.expose()).as_bytes());
        }
        let out = child
            .wait_with_output()
            .with_context(|| format!("{shown}: waiting"))?;
        if !out.status.success() {
            bail!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn member_list(&self) -> Result<Vec<EtcdMember>> {
        let out = self.run(&["member", "list", "-w", "json"], None)?;
        parse_member_list(&out)
    }

    /// `member list` and the health of every member's client URL.
    pub fn view(&self) -> Result<EtcdView> {
        let members = parse_listed(&self.run(&["member", "list", "-w", "json"], None)?)?;
        let mut healthy = BTreeSet::new();
        for m in &members {
            let Some(url) = m.client_urls.first() else {
                continue;
            };
            let probe = Etcdctl {
                endpoints: vec![url.clone()],
                ..self.clone()
            };
            if probe
                .run(&["endpoint", "health", "-w", "json"], None)
                .is_ok_and(|out| out.contains("\"health\":true"))
            {
                healthy.insert(m.id);
            }
        }
        Ok(EtcdView {
            members: members
                .into_iter()
                .map(|m| EtcdMember {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
            healthy,
        })
    }

    /// `member add <name> --learner --peer-urls=<url>`: the new member's id.
    pub fn add_learner(&self, name: &str, peer_url: &str) -> Result<u64> {
        let out = self.run(
            &[
                "member",
                "add",
                name,
                "--learner",
                &format!("--peer-urls={peer_url}"),
                "-w",
                "json",
            ],
            None,
        )?;
        #[derive(Deserialize)]
        struct Added {
            member: ListedMember,
        }
        let added: Added = serde_json::from_str(&out).context("member add: unexpected output")?;
        Ok(added.member.id)
    }

    /// Whether the endpoints answer `endpoint status` (which a learner
    /// serves too; it refuses `member list` until promoted).
    pub fn answers(&self) -> bool {
        self.run(&["endpoint", "status", "-w", "json"], None)
            .is_ok()
    }

    /// The endpoint of etcd's raft leader, from `endpoint status`.
    /// Membership changes go there: etcd 3.4 forwards a `member promote`
    /// sent to a follower without the caller's credentials, and the leader
    /// refuses it ("auth: user name is empty", measured on 3.4.23).
    /// Each endpoint is asked on its own: `endpoint status` over several
    /// fails as a whole when one of them is down (a member leaving, a
    /// crashed machine), and the leader is among those that answer.
    pub fn leader_endpoint(&self) -> Result<String> {
        let mut answers = Vec::new();
        let mut failures = Vec::new();
        for endpoint in &self.endpoints {
            let one = Etcdctl {
                endpoints: vec![endpoint.clone()],
                ..self.clone()
            };
            match one.run(&["endpoint", "status", "-w", "json"], None) {
                Ok(out) => answers.push(out),
                Err(e) => failures.push(format!("{endpoint}: {e:#}")),
            }
        }
        leader_among(&answers).with_context(|| {
            if failures.is_empty() {
                String::from("asking every etcd endpoint for its status")
            } else {
                format!("endpoints that did not answer: {}", failures.join("; "))
            }
        })
    }

    /// This etcdctl, against etcd's raft leader only.
    pub fn at_leader(&self) -> Result<Etcdctl> {
        Ok(Etcdctl {
            endpoints: vec![self.leader_endpoint()?],
            ..self.clone()
        })
    }

    pub fn promote(&self, id: u64) -> Result<()> {
        self.run(&["member", "promote", &format!("{id:x}")], None)
            .map(drop)
    }

    pub fn remove(&self, id: u64) -> Result<()> {
        self.run(&["member", "remove", &format!("{id:x}")], None)
            .map(drop)
    }

    /// Whether authentication is on: anonymous `user list` is refused then.
    pub fn auth_enabled(&self) -> Result<bool> {
        let anonymous = Etcdctl {
            user: None,
            ..self.clone()
        };
        match anonymous.run(&["user", "list"], None) {
            Ok(_) => Ok(false),
            Err(e) if format!("{e:#}").contains("user name is empty") => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// A user with `password` (created, or its password set).
    fn ensure_user(&self, name: &str, password: &Password) -> Result<()> {
        match self.run(
            &["user", "add", name, "--interactive=false"],
            Some(password),
        ) {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:#}").contains("already exists") => self
                .run(
                    &["user", "passwd", name, "--interactive=false"],
                    Some(password),
                )
                .map(drop),
            Err(e) => Err(e),
        }
    }

    fn ignoring_exists(result: Result<String>) -> Result<()> {
        match result {
            Err(e) if !format!("{e:#}").contains("already exists") => Err(e),
            _ => Ok(()),
        }
    }

    /// Users `root` and `patroni` (read-write on [`DCS_NAMESPACE`] only),
    /// then `auth enable`. Run on a cluster without authentication (the
    /// founder's, right after its first start); idempotent.
    pub fn enable_auth(
        &self,
        root: &Password,
        patroni_user: &str,
        patroni: &Password,
    ) -> Result<()> {
        let anonymous = Etcdctl {
            user: None,
            ..self.clone()
        };
        anonymous.ensure_user(ROOT_USER, root)?;
        Self::ignoring_exists(anonymous.run(&["user", "grant-role", ROOT_USER, "root"], None))?;
        Self::ignoring_exists(anonymous.run(&["role", "add", patroni_user], None))?;
        anonymous.run(
            &[
                "role",
                "grant-permission",
                patroni_user,
                "--prefix=true",
                "readwrite",
                DCS_NAMESPACE,
            ],
            None,
        )?;
        anonymous.ensure_user(patroni_user, patroni)?;
        Self::ignoring_exists(
            anonymous.run(&["user", "grant-role", patroni_user, patroni_user], None),
        )?;
        anonymous.run(&["auth", "enable"], None).map(drop)
    }

    /// Sets `user`'s password (rotation), as root.
    pub fn set_password(&self, user: &str, password: &Password) -> Result<()> {
        self.run(
            &["user", "passwd", user, "--interactive=false"],
            Some(password),
        )
        .map(drop)
    }
}

#[derive(Deserialize)]
struct EndpointStatus {
    #[serde(rename = "Endpoint")]
    endpoint: String,
    #[serde(rename = "Status")]
    status: StatusBody,
}

#[derive(Deserialize)]
struct StatusBody {
    header: StatusHeader,
    leader: u64,
}

#[derive(Deserialize)]
struct StatusHeader {
    member_id: u64,
}

/// The endpoint whose member is the leader the others name.
/// The leader's endpoint among several `endpoint status -w json` outputs.
pub fn leader_among(outputs: &[String]) -> Result<String> {
    let mut statuses: Vec<EndpointStatus> = Vec::new();
    for out in outputs {
        let mut some: Vec<EndpointStatus> =
            serde_json::from_str(out).context("endpoint status: unexpected output")?;
        statuses.append(&mut some);
    }
    statuses
        .iter()
        .find(|s| s.status.header.member_id == s.status.leader)
        .map(|s| s.endpoint.clone())
        .context("no endpoint is etcd's leader (an election is under way, or it is down?)")
}

#[derive(Debug, Deserialize)]
struct ListedMember {
    #[serde(rename = "ID")]
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

#[derive(Deserialize)]
struct MemberListJson {
    #[serde(default)]
    members: Vec<ListedMember>,
}

fn parse_listed(out: &str) -> Result<Vec<ListedMember>> {
    let parsed: MemberListJson =
        serde_json::from_str(out).context("member list: unexpected output")?;
    Ok(parsed.members)
}

/// `member list -w json`'s members.
pub fn parse_member_list(out: &str) -> Result<Vec<EtcdMember>> {
    Ok(parse_listed(out)?
        .into_iter()
        .map(|m| EtcdMember {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            is_learner: m.is_learner,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_endpoint_is_the_one_whose_member_leads() {
        let out = r#"[{"Endpoint":"http://10.0.0.1:2379","Status":{"header":{"cluster_id":1,"member_id":11,"revision":5,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":12,"raftIndex":9,"raftTerm":2,"raftAppliedIndex":9,"dbSizeInUse":20480}},
 {"Endpoint":"http://10.0.0.2:2379","Status":{"header":{"cluster_id":1,"member_id":12,"revision":5,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":12,"raftIndex":9,"raftTerm":2,"raftAppliedIndex":9,"dbSizeInUse":20480}}]"#;
        assert_eq!(
            leader_among(&[out.to_string()]).unwrap(),
            "http://10.0.0.2:2379"
        );
        let lost = out.replace("\"member_id\":12", "\"member_id\":13");
        assert!(leader_among(&[lost]).is_err());
        // One output per endpoint (each asked on its own; a member that is
        // down gives none): the leader is found among those that answered.
        let (first, second) = out.split_once(",\n").unwrap();
        let answered = [format!("{first}]"), format!("[{}", second.trim_start())];
        assert_eq!(leader_among(&answered).unwrap(), "http://10.0.0.2:2379");
        assert!(leader_among(&answered[..1]).is_err(), "the leader is down");
    }
    use crate::secret::Secret;

    #[test]
    fn member_list_json_of_etcd_3_4() {
        // Shape of etcd 3.4.23's output: a started voter, an unstarted learner
        // (no name, no client URLs); ids above 2^53 stay exact.
        let out = r#"{"header":{"cluster_id":1,"member_id":2,"raft_term":3},"members":[
          {"ID":17237436991929493444,"name":"postgresql-0","peerURLs":["http://198.18.0.10:2380"],"clientURLs":["http://198.18.0.10:2379"]},
          {"ID":9372538179322589801,"peerURLs":["http://198.18.0.11:2380"],"isLearner":true}]}"#;
        let m = parse_member_list(out).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, 17237436991929493444);
        assert_eq!(format!("{:x}", m[0].id), "ef37ad9dc622a7c4");
        assert!(!m[0].is_learner);
        assert!(m[1].is_learner && m[1].name.is_empty());
        assert!(parse_member_list("Error: context deadline exceeded").is_err());
    }

    #[test]
    fn credentials_go_in_the_environment_never_in_argv() {
        let ctl = Etcdctl::new(
            vec!["http://198.18.0.10:2379".into()],
            Some(("root".into(), Secret::new("r00t-pw".into()))),
        );
        let c = ctl.command(&["member", "list"]);
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(args, ["member", "list"]);
        let env: Vec<(String, Option<String>)> = c
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into(),
                    v.map(|v| v.to_string_lossy().into()),
                )
            })
            .collect();
        assert!(env.contains(&("ETCDCTL_PASSWORD".into(), Some("r00t-pw".into()))));
        assert!(env.contains(&("ETCDCTL_USER".into(), Some("root".into()))));
        assert!(env.contains(&(
            "ETCDCTL_ENDPOINTS".into(),
            Some("http://198.18.0.10:2379".into())
        )));
        assert!(!format!("{ctl:?}").contains("r00t-pw"));
    }

    #[test]
    fn failures_name_the_command_without_secrets() {
        let mut ctl = Etcdctl::new(
            vec!["http://127.0.0.1:9".into()],
            Some(("root".into(), Secret::new("r00t-pw".into()))),
        );
        ctl.program = "false".into();
        let e = ctl
            .set_password("patroni", &Secret::new("new-pw".into()))
            .unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("etcdctl user passwd patroni --interactive=false failed"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }
}
