use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::model::{MemoryLimits, Rule, Watch};
use crate::config::schema::{Action, Stall};
use crate::config::units::{Dur, Percent, Size};

const M: u64 = 1 << 20;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn off() -> Rule {
    Rule {
        action: Action::Off,
        threshold: None,
        r#for: Dur(s(0)),
        stall: None,
        step: None,
    }
}

fn level(action: Action, pct: u32, r#for: Duration) -> Rule {
    Rule {
        action,
        threshold: Some(Percent(pct * 100)),
        r#for: Dur(r#for),
        stall: Some(Stall::Some),
        step: (action == Action::Throttle).then_some(Percent(1000)),
    }
}

fn watch() -> Watch {
    Watch {
        oom: Rule {
            action: Action::Restart,
            ..off()
        },
        memory_pressure: off(),
        cpu_pressure: off(),
        io_pressure: off(),
        cpu_throttled: off(),
        pids_max: Rule {
            action: Action::Warn,
            ..off()
        },
        fds: off(),
    }
}

fn memory(high: Option<u64>, max: Option<u64>, low: Option<u64>) -> MemoryLimits {
    MemoryLimits {
        max: max.map(Size::Bytes),
        high: high.map(Size::Bytes),
        low: low.map(Size::Bytes),
        swap_max: None,
        oom_group: false,
    }
}

fn watcher(w: Watch) -> Watcher {
    Watcher::new(&w, &memory(None, Some(64 * M), None), s(1), true, 0, 0)
}

fn fired(v: &[Verdict]) -> Vec<&Fired> {
    v.iter()
        .filter_map(|v| match v {
            Verdict::Fire(f) => Some(f),
            Verdict::Restore { .. } => None,
        })
        .collect()
}

#[test]
fn rule_names_are_the_config_keys() {
    let names: Vec<_> = RuleKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "oom",
            "memory_pressure",
            "cpu_pressure",
            "io_pressure",
            "cpu_throttled",
            "pids_max",
            "fds"
        ]
    );
    // Every key of the config's watch section has a rule.
    let w = watch();
    for k in RuleKind::ALL {
        let _ = k.rule(&w);
    }
    assert_eq!(
        RuleKind::PRESSURE.map(|k| k.pressure_file().unwrap()),
        ["memory.pressure", "cpu.pressure", "io.pressure"]
    );
}

#[test]
fn an_oom_kill_fires_once_with_its_figures() {
    let mut w = watcher(watch());
    assert!(w.on_counters(s(1), Some(0), None).is_empty());
    let v = w.on_counters(s(2), Some(1), None);
    let f = fired(&v);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].rule, RuleKind::Oom);
    assert_eq!(f[0].action, Action::Restart);
    assert_eq!(f[0].observed, "memory.events oom_kill 1 (+1)");
    // The same count again (another file changed): nothing.
    assert!(w.on_counters(s(3), Some(1), None).is_empty());
}

#[test]
fn event_counts_within_the_quiet_time_go_into_the_next_firing() {
    let mut w = watcher(watch());
    let v = w.on_counters(
        s(0),
        None,
        Some(Pids {
            max_events: 5,
            current: Some(24),
            limit: Some(24),
        }),
    );
    assert_eq!(
        fired(&v)[0].observed,
        "pids.events max 5 (+5), pids.current 24/24"
    );
    for (t, n) in [(1, 400), (5, 2000), (9, 3000)] {
        assert!(w.on_counters(s(t), None, Some(Pids::events(n))).is_empty());
    }
    let v = w.on_counters(s(10), None, Some(Pids::events(3100)));
    assert_eq!(fired(&v)[0].observed, "pids.events max 3100 (+3095)");
    assert_eq!(w.counters(), (0, 3100));
}

#[test]
fn adopted_counters_are_the_baseline() {
    let mut w = Watcher::new(&watch(), &MemoryLimits::default(), s(1), true, 3, 70);
    assert!(
        w.on_counters(s(0), Some(3), Some(Pids::events(70)))
            .is_empty()
    );
    assert_eq!(
        fired(&w.on_counters(s(1), Some(4), None))[0].observed,
        "memory.events oom_kill 4 (+1)"
    );
}

#[test]
fn an_off_rule_never_fires_but_keeps_counting() {
    let mut wt = watch();
    wt.oom = off();
    wt.pids_max = off();
    let mut w = watcher(wt);
    assert!(
        w.on_counters(s(0), Some(2), Some(Pids::events(9)))
            .is_empty()
    );
    assert_eq!(w.counters(), (2, 9));
    assert!(w.on_exit_oom(s(1), 3).is_none());
}

#[test]
fn an_oom_seen_first_at_exit_fires_there_and_only_once() {
    let mut w = watcher(watch());
    let f = w.on_exit_oom(s(1), 1).unwrap();
    assert_eq!(f.observed, "memory.events oom_kill 1 (+1)");
    // The inotify wake-up for the same kill, late: nothing new.
    assert!(w.on_counters(s(1), Some(1), None).is_empty());
    // Already fired by the file change: the exit adds nothing.
    let mut w = watcher(watch());
    assert_eq!(fired(&w.on_counters(s(1), Some(1), None)).len(), 1);
    assert!(w.on_exit_oom(s(2), 1).is_none());
}

#[test]
fn cpu_throttled_needs_the_ratio_over_a_whole_window() {
    let mut wt = watch();
    wt.cpu_throttled = level(Action::Warn, 50, s(5));
    let mut w = watcher(wt);
    let mut out = Vec::new();
    // 10 periods a second, 8 of them throttled.
    for t in 0..=12u64 {
        let obs = Observation {
            cpu_periods: Some((t * 10, t * 8)),
            fds: None,
        };
        for v in w.on_sweep(s(t), &obs) {
            out.push((t, v));
        }
    }
    assert_eq!(out.len(), 1, "{out:?}");
    let (t, Verdict::Fire(f)) = &out[0] else {
        panic!()
    };
    assert_eq!(*t, 5, "fires once the window spans `for`");
    assert_eq!(f.observed, "nr_throttled 40/50 periods (80.0%) over 5.0s");
}

#[test]
fn cpu_throttled_fires_again_only_after_the_ratio_dropped() {
    let mut wt = watch();
    wt.cpu_throttled = level(Action::Warn, 50, s(2));
    let mut w = watcher(wt);
    let (mut p, mut th) = (0, 0);
    let mut fires = Vec::new();
    // throttled share per second: 90% for 6s, 10% for 6s, 90% for 6s.
    for t in 0..18u64 {
        let share = if (6..12).contains(&t) { 1 } else { 9 };
        p += 10;
        th += share;
        let obs = Observation {
            cpu_periods: Some((p, th)),
            fds: None,
        };
        if !fired(&w.on_sweep(s(t), &obs)).is_empty() {
            fires.push(t);
        }
    }
    assert_eq!(fires.len(), 2, "{fires:?}");
    assert!(fires[1] >= 13, "{fires:?}");
}

#[test]
fn no_periods_is_no_throttling() {
    let mut wt = watch();
    wt.cpu_throttled = level(Action::Warn, 10, s(1));
    let mut w = watcher(wt);
    for t in 0..5 {
        let obs = Observation {
            cpu_periods: Some((7, 7)),
            fds: None,
        };
        assert!(w.on_sweep(s(t), &obs).is_empty());
    }
}

#[test]
fn fds_fire_after_holding_for_their_duration() {
    let mut wt = watch();
    wt.fds = level(Action::Warn, 90, s(2));
    let mut w = watcher(wt);
    let obs = |open| Observation {
        cpu_periods: None,
        fds: Some(FdUse {
            pid: 42,
            open,
            limit: Some(100),
        }),
    };
    assert!(w.on_sweep(s(0), &obs(95)).is_empty());
    assert!(w.on_sweep(s(1), &obs(95)).is_empty());
    let v = w.on_sweep(s(2), &obs(96));
    assert_eq!(
        fired(&v)[0].observed,
        "pid 42 has 96 open fds of RLIMIT_NOFILE 100 (96.0%) for 2.0s"
    );
    assert!(w.on_sweep(s(3), &obs(99)).is_empty(), "once per episode");
    // Dropping to 90% (not above) ends the episode; the next starts over.
    assert!(w.on_sweep(s(4), &obs(90)).is_empty());
    assert!(w.on_sweep(s(5), &obs(91)).is_empty());
    assert!(w.on_sweep(s(6), &obs(91)).is_empty());
    assert_eq!(fired(&w.on_sweep(s(7), &obs(91))).len(), 1);
    // Unlimited never counts.
    let mut wt = watch();
    wt.fds = level(Action::Warn, 0, s(0));
    let mut w = watcher(wt);
    let unl = Observation {
        cpu_periods: None,
        fds: Some(FdUse {
            pid: 1,
            open: 10_000,
            limit: None,
        }),
    };
    assert!(w.on_sweep(s(0), &unl).is_empty());
}

#[test]
fn triggers_follow_the_rules() {
    let r = level(Action::Warn, 20, s(3));
    assert_eq!(trigger_for(&r, true), (Stall::Some, ms(600), s(3)));
    // Unprivileged: a 2s multiple.
    assert_eq!(trigger_for(&r, false), (Stall::Some, ms(800), s(4)));
    // Clamped to the kernel's 500ms..10s.
    let long = level(Action::Warn, 50, s(60));
    assert_eq!(trigger_for(&long, true).2, s(10));
    let short = level(Action::Warn, 50, ms(100));
    assert_eq!(trigger_for(&short, true), (Stall::Some, ms(250), ms(500)));
    // 0% still needs a positive threshold.
    let zero = level(Action::Warn, 0, s(1));
    assert_eq!(trigger_for(&zero, true).1, Duration::from_micros(1));
    let mut wt = watch();
    wt.io_pressure = Rule {
        stall: Some(Stall::Full),
        ..level(Action::Stop, 10, s(1))
    };
    let w = watcher(wt);
    assert_eq!(
        w.triggers(),
        [(RuleKind::IoPressure, Stall::Full, ms(100), s(1))]
    );
}

#[test]
fn pressure_fires_when_the_stall_held_for_its_duration() {
    let mut wt = watch();
    wt.memory_pressure = level(Action::Restart, 20, s(2));
    let mut w = watcher(wt);
    // for == window: the first firing already covers it.
    let v = w.on_pressure(s(10), RuleKind::MemoryPressure, Some(34.2));
    let f = fired(&v);
    assert_eq!(f[0].action, Action::Restart);
    assert_eq!(
        f[0].observed,
        "memory.pressure some 400ms of 2s stalled (avg10=34.20) for 2.0s"
    );
    assert!(
        w.on_pressure(s(12), RuleKind::MemoryPressure, None)
            .is_empty()
    );
    // A rule that is off ignores its trigger.
    assert!(w.on_pressure(s(12), RuleKind::CpuPressure, None).is_empty());

    // for > window (10s max): it takes firings over 30s.
    let mut wt = watch();
    wt.cpu_pressure = level(Action::Warn, 50, s(30));
    let mut w = watcher(wt);
    let mut first = None;
    for t in (100..140).step_by(10) {
        if !w.on_pressure(s(t), RuleKind::CpuPressure, None).is_empty() {
            first.get_or_insert(t);
        }
        w.on_sweep(s(t) + ms(500), &Observation::default());
    }
    assert_eq!(first, Some(120), "held from 10s before the first firing");
}

#[test]
fn a_pressure_episode_ends_when_the_trigger_goes_quiet() {
    let mut wt = watch();
    wt.cpu_pressure = level(Action::Warn, 50, s(1));
    let mut w = watcher(wt);
    assert_eq!(w.on_pressure(s(10), RuleKind::CpuPressure, None).len(), 1);
    // Firing each window: same episode.
    for t in 11..15 {
        assert!(w.on_pressure(s(t), RuleKind::CpuPressure, None).is_empty());
        assert!(
            w.on_sweep(s(t) + ms(500), &Observation::default())
                .is_empty()
        );
    }
    // Quiet for more than window + interval: over; the next firing is new.
    w.on_sweep(s(17), &Observation::default());
    assert_eq!(w.on_pressure(s(18), RuleKind::CpuPressure, None).len(), 1);
}

#[test]
fn throttle_steps_memory_high_down_to_the_floor_and_restores_it() {
    let mut wt = watch();
    wt.memory_pressure = level(Action::Throttle, 10, s(1));
    let mut w = Watcher::new(
        &wt,
        &memory(Some(100 * M), Some(200 * M), Some(75 * M)),
        s(1),
        true,
        0,
        0,
    );
    let mut highs = Vec::new();
    for t in 0..6 {
        for v in w.on_pressure(s(t), RuleKind::MemoryPressure, None) {
            let Verdict::Fire(f) = v else { panic!() };
            assert_eq!(f.action, Action::Throttle);
            highs.push(f.memory_high.unwrap());
        }
    }
    let step = 100 * M / 10 / 4096 * 4096;
    assert_eq!(highs[0], (100 * M, 100 * M - step));
    assert_eq!(highs.last().unwrap().1, 75 * M, "never below memory.low");
    assert_eq!(highs.len(), 3);
    assert_eq!(w.throttled_high(), Some(75 * M));
    // Quiet: back to the configured memory.high.
    let v = w.on_sweep(s(9), &Observation::default());
    assert_eq!(
        v,
        [Verdict::Restore {
            to: Some(100 * M),
            from: 75 * M
        }]
    );
    assert_eq!(w.throttled_high(), None);
    assert!(w.on_sweep(s(20), &Observation::default()).is_empty());
}

#[test]
fn throttle_without_memory_high_steps_from_max_and_restores_max() {
    let mut wt = watch();
    wt.memory_pressure = level(Action::Throttle, 10, s(1));
    let mut w = Watcher::new(&wt, &memory(None, Some(64 * M), None), s(1), true, 0, 0);
    let v = w.on_pressure(s(10), RuleKind::MemoryPressure, None);
    let (from, to) = fired(&v)[0].memory_high.unwrap();
    assert_eq!(from, 64 * M);
    assert!(to < from && to >= 32 * M);
    let v = w.on_sweep(s(15), &Observation::default());
    assert_eq!(v, [Verdict::Restore { to: None, from: to }]);
}

proptest! {
    /// Whatever the triggers and sweeps, throttle stays within
    /// [floor, base], every step goes down, and a restore returns the
    /// configured value.
    #[test]
    fn throttle_stays_between_floor_and_base(
        events in proptest::collection::vec((0u64..3000, any::<bool>()), 1..60),
        low in proptest::option::of(1u64..64),
        step in 1u32..50,
    ) {
        let mut wt = watch();
        wt.memory_pressure = Rule { step: Some(Percent(step * 100)), ..level(Action::Throttle, 10, s(1)) };
        let base = 64 * M;
        let low = low.map(|l| l * M);
        let mut w = Watcher::new(&wt, &memory(Some(base), None, low), s(1), true, 0, 0);
        let floor = low.unwrap_or(base / 2);
        let mut now = Duration::ZERO;
        let mut current = base;
        for (dt, trigger) in events {
            now += ms(dt);
            let v = if trigger {
                w.on_pressure(now, RuleKind::MemoryPressure, None)
            } else {
                w.on_sweep(now, &Observation::default())
            };
            for v in v {
                match v {
                    Verdict::Fire(f) => {
                        let (from, to) = f.memory_high.unwrap();
                        prop_assert_eq!(from, current);
                        prop_assert!(to < from);
                        prop_assert!(to >= floor.min(from) - floor.min(from) % 4096);
                        current = to;
                    }
                    Verdict::Restore { to, from } => {
                        prop_assert_eq!(from, current);
                        prop_assert_eq!(to, Some(base));
                        current = base;
                    }
                }
            }
            prop_assert_eq!(w.throttled_high().unwrap_or(base), current);
        }
    }

    /// Event rules: the deltas of all firings add up to the count seen at
    /// the last firing, and no two firings are closer than the quiet time.
    #[test]
    fn event_firings_account_for_every_count(
        steps in proptest::collection::vec((0u64..5000, 0u64..20), 1..80),
    ) {
        let mut w = watcher(watch());
        let (mut now, mut n) = (Duration::ZERO, 0u64);
        let mut last: Option<Duration> = None;
        let mut sum = 0;
        let mut at_last_fire = 0;
        for (dt, add) in steps {
            now += ms(dt);
            n += add;
            for v in w.on_counters(now, None, Some(Pids::events(n))) {
                let Verdict::Fire(f) = v else { panic!() };
                let delta: u64 = f.observed.split("(+").nth(1).unwrap()
                    .trim_end_matches(')').parse().unwrap();
                sum += delta;
                at_last_fire = n;
                if let Some(l) = last {
                    prop_assert!(now - l >= EVENT_QUIET);
                }
                last = Some(now);
            }
        }
        prop_assert_eq!(sum, at_last_fire);
    }
}
