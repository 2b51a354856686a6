//! How many Erlang VMs warren starts at once, over all hosts: RabbitMQ CLI calls and
//! nodes booting each take a slot, so hosts that share a machine's CPUs are not
//! starved (`WARREN_CLI_PARALLEL`, `WARREN_PARALLEL_STARTS`).

/// A count of slots shared by every host's thread: how many Erlang VMs warren has
/// starting at once. Each costs seconds of CPU; where hosts share a machine's CPUs
/// (the lab, or VMs on one hypervisor), twenty at once only queue for the CPU and
/// starve everything else on it, SSH included.
struct Slots {
    used: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    /// The environment variable that sets the cap, and its default.
    var: &'static str,
    default: usize,
    cap: std::sync::OnceLock<usize>,
}

impl Slots {
    const fn new(var: &'static str, default: usize) -> Slots {
        Slots {
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            var,
            default,
            cap: std::sync::OnceLock::new(),
        }
    }

    fn cap(&self) -> usize {
        *self.cap.get_or_init(|| {
            std::env::var(self.var)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(self.default)
        })
    }

    /// Waits for a free slot; it is given back when the `Slot` is dropped.
    fn take(&'static self) -> Slot {
        let mut n = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.cap() {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }
}

/// One slot of a `Slots`, held until dropped.
pub struct Slot(&'static Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// RabbitMQ CLI calls at once, over all hosts (`WARREN_CLI_PARALLEL`, default 8).
static CLI_SLOTS: Slots = Slots::new("WARREN_CLI_PARALLEL", 8);
/// Nodes other than the seed starting (booting) at once, over all hosts
/// (`WARREN_PARALLEL_STARTS`, default 8: the user's four sites start together, a
/// 20-host lab on two cores in three batches; on hosts with CPUs of their own,
/// raise it).
static START_SLOTS: Slots = Slots::new("WARREN_PARALLEL_STARTS", 8);

/// Waits for a free CLI slot.
pub fn cli_slot() -> Slot {
    CLI_SLOTS.take()
}

/// Waits for a free start slot (held through a node's start and boot).
pub fn start_slot() -> Slot {
    START_SLOTS.take()
}
