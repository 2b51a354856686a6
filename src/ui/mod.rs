//! Progress on stderr: on a terminal, an indicatif line per host and an overall bar;
//! otherwise plain lines, one per event, that read well in a log: what a host starts
//! doing ends in " ...", what it finished does not. Results go to stdout.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    /// On a terminal only.
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: BTreeMap<String, ProgressBar>,
    /// A host's line while it works: with the step's time, reset at each step.
    working: ProgressStyle,
    /// A host's line between steps (waiting, done).
    between: ProgressStyle,
}

impl Progress {
    /// `hosts` get a line each; `steps` is the length of the overall bar, in the
    /// weights the steps are reported with.
    pub fn new(hosts: &[String], steps: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let working =
            ProgressStyle::with_template("{spinner} {prefix:<12} {wide_msg} {elapsed:>4}")
                .expect("valid template");
        let between = ProgressStyle::with_template("{spinner} {prefix:<12} {wide_msg}")
            .expect("valid template");
        let mut per_host = BTreeMap::new();
        for h in hosts {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(between.clone());
            b.set_prefix(h.clone());
            b.set_message("waiting");
            b.enable_steady_tick(Duration::from_millis(120));
            per_host.insert(h.clone(), b);
        }
        let overall = multi.add(ProgressBar::new(steps));
        overall.set_style(
            ProgressStyle::with_template("{bar:40} {percent:>3}% of the work {elapsed}")
                .expect("valid template"),
        );
        // Drawn from the start, its clock moving while a long step runs.
        overall.enable_steady_tick(Duration::from_millis(500));
        Progress {
            bars: Some(Bars {
                multi,
                overall,
                hosts: per_host,
                working,
                between,
            }),
        }
    }

    /// What `host` is doing now.
    pub fn host(&self, host: &str, message: &str) {
        match &self.bars {
            Some(bars) => {
                if let Some(b) = bars.hosts.get(host) {
                    b.set_style(bars.working.clone());
                    b.reset_elapsed();
                    b.set_message(message.to_string());
                }
            }
            None => eprintln!("{host}: {message} ..."),
        }
    }

    /// What `host` is between steps: waiting (and for what), done. Shown on its
    /// line; not logged as a plain line, where the steps themselves say it.
    pub fn idle(&self, host: &str, message: &str) {
        if let Some(bars) = &self.bars {
            if let Some(b) = bars.hosts.get(host) {
                b.set_style(bars.between.clone());
                b.set_message(message.to_string());
            }
        }
    }

    /// A finished step: logged above the bars, or as a plain line.
    pub fn done(&self, host: &str, message: &str) {
        self.done_weighted(host, message, 1);
    }

    /// A finished step that moves the overall bar by `weight` (a node's start or
    /// join weighs more than a quick cluster change).
    pub fn done_weighted(&self, host: &str, message: &str, weight: u64) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(format!("{host}: {message}"));
                bars.overall.inc(weight);
            }
            None => eprintln!("{host}: {message}"),
        }
    }

    /// Work done that logs no line: moves the overall bar by `weight`.
    pub fn advance(&self, weight: u64) {
        if let Some(bars) = &self.bars {
            bars.overall.inc(weight);
        }
    }

    /// The end: each host's line keeps what it last was (done, failed, no changes).
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for b in bars.hosts.values() {
                b.finish();
            }
            bars.overall.finish();
        }
    }
}

/// `text` in green when `good`, in red otherwise, when stdout is a terminal that
/// takes colour (console's rules: NO_COLOR and CLICOLOR_FORCE are honoured); plain
/// text otherwise. Pad before painting, so columns stay aligned.
pub fn paint(text: &str, good: bool) -> String {
    let s = console::style(text);
    if good {
        s.green().to_string()
    } else {
        s.red().bold().to_string()
    }
}

/// `text` in yellow, by `paint`'s rules: something to know, not a failure.
pub fn warn(text: &str) -> String {
    console::style(text).yellow().to_string()
}
