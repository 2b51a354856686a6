//! The command line, as clap parses it: the commands, their flags and arguments. What
//! each command does is in `commands/`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "warren",
    version,
    about = "Turns a handful of RabbitMQ servers into the cluster drawn in one inventory.toml"
)]
pub struct Cli {
    /// The inventory file.
    #[arg(
        short = 'i',
        long = "inventory",
        global = true,
        default_value = "inventory.toml"
    )]
    pub inventory: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the inventory and report every problem at once; touches no host.
    Check,
    /// Write every host's files locally (OUT/HOST/...), touching no host.
    Render {
        /// Where to write.
        #[arg(long, default_value = "rendered")]
        out: PathBuf,
        /// Render only this host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Gather every host's state and print what `apply` would do; changes nothing.
    Plan {
        /// Exit 2 when something would change.
        #[arg(long)]
        exit_code: bool,
        /// Print how long each phase took.
        #[arg(long)]
        timings: bool,
        /// Also compare the live cluster's definitions with this backup (written by
        /// `warren backup`): what it lacks, has in addition or has changed since.
        /// With --exit-code, a difference exits 2 too.
        #[arg(long, value_name = "FILE")]
        backup: Option<PathBuf>,
    },
    /// Bootstrap or converge the cluster: plan, confirm, push, restart what changed, join, declare, verify.
    Apply {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Only show the plan (the same as `warren plan`).
        #[arg(long)]
        dry_run: bool,
        /// Allow what the plan refuses for an operator who really means it: resetting a
        /// node that belongs to another cluster or holds messages, restarting the only
        /// disc node, or a restart that takes a quorum queue below its majority.
        #[arg(long)]
        force: bool,
        /// Print how long each phase took.
        #[arg(long)]
        timings: bool,
        /// Record the SSH host keys of hosts not yet in known_hosts (their
        /// fingerprints are printed); without it such a host is refused.
        #[arg(long)]
        accept_new_host_keys: bool,
        /// Allow a change that disrupts the whole cluster at once (a new cookie on
        /// every member).
        #[arg(long)]
        allow_disruptive: bool,
        /// Take over the lock of another run that is not provably gone (its machine
        /// crashed or lost the network); a run of this machine whose process is gone
        /// is taken over without it.
        #[arg(long)]
        break_lock: bool,
    },
    /// Check the live cluster against the inventory; exit 1 when any check fails.
    Verify {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every assumption warren makes about each host (rights, RabbitMQ and
    /// Erlang, the service, the cookie, names and ports between the hosts, clock,
    /// disk, memory, folders, TLS files); changes nothing; exit 1 when any check fails.
    Doctor {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        /// Check only this host (and the names and ports between it and the others);
        /// repeat for more.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
    /// Nodes and queues as the cluster sees them now.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Export the cluster's definitions (RabbitMQ's password hashes, link passwords
    /// masked) to DIR/definitions-YYYYMMDD-HHMMSS.json (UTC), mode 0600.
    Backup {
        /// Where to write (created, mode 0700, when missing).
        #[arg(long, default_value = "backups")]
        out: PathBuf,
    },
    /// Rehearse a site failure on a queue of warren's own: publish, stop the site's
    /// RabbitMQ, read every message from its copy, start it again, wait for the resync.
    Drill {
        /// The site host to stop.
        site: String,
        /// How many messages to publish.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        messages: u32,
        /// Do not ask before stopping RabbitMQ on the site host.
        #[arg(long)]
        yes: bool,
        /// Take over the lock of another run that is not provably gone.
        #[arg(long)]
        break_lock: bool,
    },
    /// A local lab of real hosts in network namespaces (root only).
    Lab {
        /// Which lab: a named lab runs beside the default one, with its own bridge,
        /// subnet, namespaces and folder (./lab-NAME); without it, the default lab
        /// (./lab).
        #[arg(long, global = true, value_name = "NAME")]
        name: Option<String>,
        #[command(subcommand)]
        action: LabAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabAction {
    /// Build the lab, or add hosts to it; existing healthy hosts are left alone.
    Up {
        /// How many hosts: one central host and N-1 site hosts.
        #[arg(long, default_value_t = 5)]
        hosts: usize,
        /// Boot systemd as the central host's init (in systemd-nspawn), RabbitMQ as
        /// Debian's rabbitmq-server.service; the inventory says service = "systemd".
        #[arg(long)]
        systemd: bool,
    },
    /// Remove every trace of the lab: processes, namespaces, links, mounts, files.
    Down,
    /// A fresh cluster in seconds: stop every node, give each host its RabbitMQ
    /// folders and the lab's inventory.toml as `lab up` made them, start the nodes;
    /// namespaces, sshd and keys stay.
    Reset,
    /// Show each lab host and whether it answers.
    Status,
}
