//! Progress on stderr: on a terminal, an indicatif line per host and an overall bar;
//! otherwise plain lines, one per event, that read well in a log: what a host starts
//! doing ends in " ...", what it finished does not. Results go to stdout.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar, BTreeMap<String, ProgressBar>)>,
}

impl Progress {
    /// `hosts` get a line each; `steps` is the length of the overall bar.
    pub fn new(hosts: &[String], steps: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let line = ProgressStyle::with_template("{spinner} {prefix:<12} {wide_msg}")
            .expect("valid template");
        let mut per_host = BTreeMap::new();
        for h in hosts {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(line.clone());
            b.set_prefix(h.clone());
            b.set_message("waiting");
            b.enable_steady_tick(Duration::from_millis(120));
            per_host.insert(h.clone(), b);
        }
        let overall = multi.add(ProgressBar::new(steps));
        overall.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed}")
                .expect("valid template"),
        );
        Progress {
            bars: Some((multi, overall, per_host)),
        }
    }

    /// What `host` is doing now.
    pub fn host(&self, host: &str, message: &str) {
        match &self.bars {
            Some((_, _, hosts)) => {
                if let Some(b) = hosts.get(host) {
                    b.set_message(message.to_string());
                }
            }
            None => eprintln!("{host}: {message} ..."),
        }
    }

    /// A finished step: logged above the bars, or as a plain line.
    pub fn done(&self, host: &str, message: &str) {
        match &self.bars {
            Some((multi, overall, _)) => {
                let _ = multi.println(format!("{host}: {message}"));
                overall.inc(1);
            }
            None => eprintln!("{host}: {message}"),
        }
    }

    pub fn finish(&self) {
        if let Some((_, overall, hosts)) = &self.bars {
            for b in hosts.values() {
                b.finish_with_message("done");
            }
            overall.finish();
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
