use super::*;
use proptest::prelude::*;

// ---------------------------------------------------- exhaustive table

fn phases() -> Vec<(char, Phase)> {
    vec![
        ('I', Phase::Idle),
        ('P', Phase::StartPending),
        ('D', Phase::Draining),
        ('H', Phase::Halting),
        ('R', Phase::Removing),
        ('m', Phase::Moving { start: false }),
        ('M', Phase::Moving { start: true }),
    ]
}

/// Every event, with the variants that take different arms.
fn events() -> Vec<SvcEvent> {
    vec![
        SvcEvent::Start { stopped: true },
        SvcEvent::Start { stopped: false },
        SvcEvent::Stop,
        SvcEvent::Shutdown,
        SvcEvent::Removed,
        SvcEvent::Moved { up: true },
        SvcEvent::Moved { up: false },
        SvcEvent::Resize,
        SvcEvent::Admit,
        SvcEvent::DepsReady,
        SvcEvent::DependantsDown,
        SvcEvent::AllStopped,
    ]
}

/// Fails to compile when an event is added, so the table gets a column.
fn covered(e: SvcEvent) {
    match e {
        SvcEvent::Start { .. }
        | SvcEvent::Stop
        | SvcEvent::Shutdown
        | SvcEvent::Removed
        | SvcEvent::Moved { .. }
        | SvcEvent::Resize
        | SvcEvent::Admit
        | SvcEvent::DepsReady
        | SvcEvent::DependantsDown
        | SvcEvent::AllStopped => {}
    }
}

fn cmd_letter(c: Option<Cmd>) -> char {
    match c {
        None => '-',
        Some(Cmd::StartInstances) => 'S',
        Some(Cmd::StopInstances) => 'T',
        Some(Cmd::Forward) => 'F',
        Some(Cmd::Resize) => 'Z',
        Some(Cmd::Admit) => 'A',
        Some(Cmd::Refuse) => 'X',
        Some(Cmd::Drop) => 'd',
        Some(Cmd::Recreate { start: false }) => 'r',
        Some(Cmd::Recreate { start: true }) => 'R',
    }
}

/// Expected cell per (phase, event): the next phase's letter (as in
/// `phases()`, `x` gone) and the command's (as in `cmd_letter`). Columns:
/// Start(stopped) Start(none stopped) Stop Shutdown Removed Moved(up)
/// Moved(down) Resize Admit DepsReady DependantsDown AllStopped.
const TABLE: [(char, &str); 7] = [
    ('I', "PF IF IT D- RT MT mT IZ IA I- I- I-"),
    ('P', "PF PF IT D- RT MT MT PZ PA IS P- P-"),
    ('D', "D- D- DT D- D- D- D- D- DX D- HT D-"),
    ('H', "H- H- H- H- H- H- H- H- HX H- H- H-"),
    ('R', "R- R- R- H- R- R- R- R- RX R- R- xd"),
    ('m', "M- M- m- H- R- m- m- m- mX m- m- xr"),
    ('M', "M- M- m- H- R- M- M- M- MX M- M- xR"),
];

#[test]
fn every_phase_times_every_event() {
    let phases = phases();
    let letter = |p: Option<Phase>| match p {
        None => 'x',
        Some(p) => phases
            .iter()
            .find(|(_, q)| *q == p)
            .map(|(c, _)| *c)
            .unwrap_or('?'),
    };
    let mut checked = 0;
    for (row, (l, phase)) in TABLE.iter().zip(&phases) {
        assert_eq!(row.0, *l, "rows follow phases()");
        let cells: Vec<&str> = row.1.split(' ').collect();
        assert_eq!(cells.len(), events().len(), "row {l}");
        for (cell, event) in cells.iter().zip(events()) {
            covered(event);
            let (next, cmd) = on(*phase, event);
            let got: String = [letter(next), cmd_letter(cmd)].iter().collect();
            assert_eq!(&got, cell, "{phase:?} x {event:?}");
            // In every cell: a service goes away only once stopped, and
            // only a going-away service refuses an admission.
            if next.is_none() {
                assert_eq!(event, SvcEvent::AllStopped, "{phase:?} x {event:?}");
            }
            if cmd == Some(Cmd::StartInstances) {
                assert_eq!(event, SvcEvent::DepsReady, "{phase:?} x {event:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 12);
}

#[test]
fn a_going_service_forwards_no_request_to_its_instances() {
    for (_, p) in phases() {
        let going = !matches!(p, Phase::Idle | Phase::StartPending);
        for e in [
            SvcEvent::Start { stopped: true },
            SvcEvent::Start { stopped: false },
        ] {
            let (_, cmd) = on(p, e);
            assert_eq!(cmd == Some(Cmd::Forward), !going, "{p:?}");
        }
    }
}

// ------------------------------------------------------------ a model

/// One instance, as far as the fleet cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum I {
    Stopped,
    Starting,
    Ready,
    Stopping,
}

#[derive(Debug, Clone)]
struct S {
    name: String,
    deps: Vec<String>,
    template: bool,
    phase: Phase,
    insts: Vec<I>,
}

impl Member for S {
    fn name(&self) -> &str {
        &self.name
    }
    fn depends_on(&self) -> &[String] {
        &self.deps
    }
    fn is_template(&self) -> bool {
        self.template
    }
    fn phase(&self) -> Phase {
        self.phase
    }
    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }
    fn facts(&self) -> Facts {
        Facts {
            any_stopped: self.insts.contains(&I::Stopped),
            all_stopped: self.insts.iter().all(|i| *i == I::Stopped),
            all_ready: self.insts.iter().all(|i| *i == I::Ready),
            settled: !self.insts.contains(&I::Starting),
        }
    }
}

/// The daemon around the fleet: executes commands the way the driver does,
/// and checks the invariants as it goes.
#[derive(Debug)]
struct World {
    svcs: Vec<S>,
    /// Services gone for good (removed, or moved and recreated).
    gone: usize,
}

impl World {
    fn new(n: usize, edges: &[(usize, usize)], templates: &[bool]) -> World {
        let template = |i: usize| templates.get(i).copied().unwrap_or(false);
        let svcs = (0..n)
            .map(|i| S {
                name: format!("s{i}"),
                // Only to lower indices and never to a template, as
                // validation guarantees.
                deps: edges
                    .iter()
                    .filter(|(a, b)| *a % n == i && *b % n < i && !template(*b % n))
                    .map(|(_, b)| format!("s{}", b % n))
                    .collect(),
                template: template(i),
                phase: Phase::Idle,
                insts: vec![I::Stopped; 1 + i % 3],
            })
            .collect();
        World { svcs, gone: 0 }
    }

    fn deps_ready(&self, i: usize) -> bool {
        self.svcs[i].deps.iter().all(|d| {
            self.svcs
                .iter()
                .filter(|s| &s.name == d)
                .all(|s| s.facts().all_ready)
        })
    }

    fn dependants_down(&self, i: usize) -> bool {
        let name = &self.svcs[i].name;
        self.svcs
            .iter()
            .filter(|s| s.deps.contains(name))
            .all(|s| s.facts().all_stopped)
    }

    fn exec(&mut self, cmds: Vec<(usize, Cmd)>) {
        let mut going = Vec::new();
        for (i, c) in cmds {
            let phase = self.svcs[i].phase;
            let name = self.svcs[i].name.clone();
            match c {
                Cmd::StartInstances => {
                    assert!(
                        self.deps_ready(i),
                        "{} started before its deps",
                        self.svcs[i].name
                    );
                    for x in &mut self.svcs[i].insts {
                        if *x == I::Stopped {
                            *x = I::Starting;
                        }
                    }
                }
                Cmd::StopInstances => {
                    if matches!(phase, Phase::Halting) {
                        assert!(
                            self.dependants_down(i),
                            "{name} stopped before its dependants"
                        );
                    }
                    for x in &mut self.svcs[i].insts {
                        if *x != I::Stopped {
                            *x = I::Stopping;
                        }
                    }
                }
                Cmd::Forward | Cmd::Resize | Cmd::Refuse => {}
                Cmd::Admit => {
                    assert!(matches!(phase, Phase::Idle | Phase::StartPending));
                    self.svcs[i].insts.push(I::Starting);
                }
                Cmd::Drop | Cmd::Recreate { .. } => {
                    assert!(
                        self.svcs[i].facts().all_stopped,
                        "{name} went with live instances"
                    );
                    going.push((i, c));
                }
            }
        }
        going.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        let mut back = Vec::new();
        for (i, c) in going {
            let s = self.svcs.remove(i);
            self.gone += 1;
            if let Cmd::Recreate { start } = c {
                back.push((s, start));
            }
        }
        for (mut s, start) in back {
            s.phase = Phase::Idle;
            let name = s.name.clone();
            self.svcs.push(s);
            if start {
                let cmds = want_start(&mut self.svcs, &name);
                self.exec(cmds);
            }
        }
    }

    fn settle(&mut self) {
        for _ in 0..64 {
            let cmds = reconcile(&mut self.svcs);
            if cmds.is_empty() {
                return;
            }
            self.exec(cmds);
        }
        panic!("reconcile never settled");
    }

    /// The kernel and the instances' machines move on.
    fn progress(&mut self, which: usize, crash: bool) {
        let all: Vec<(usize, usize)> = self
            .svcs
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (0..s.insts.len()).map(move |k| (i, k)))
            .collect();
        if all.is_empty() {
            return;
        }
        let (i, k) = all[which % all.len()];
        let x = &mut self.svcs[i].insts[k];
        *x = match *x {
            I::Starting if crash => I::Stopped,
            I::Starting => I::Ready,
            I::Ready if crash => I::Stopped,
            I::Stopping => I::Stopped,
            other => other,
        };
    }

    /// No two services of one name with live instances.
    fn one_live_per_name(&self) {
        let mut live = std::collections::HashSet::new();
        for s in &self.svcs {
            if !s.facts().all_stopped {
                assert!(live.insert(&s.name), "two live {}", s.name);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Start(usize),
    Stop(usize),
    Remove(usize),
    Move(usize),
    Admit(usize),
    Progress(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize).prop_map(Op::Start),
        1 => (0..8usize).prop_map(Op::Stop),
        1 => (0..8usize).prop_map(Op::Remove),
        1 => (0..8usize).prop_map(Op::Move),
        1 => (0..8usize).prop_map(Op::Admit),
        8 => (0..64usize, proptest::bool::weighted(0.1)).prop_map(|(w, c)| Op::Progress(w, c)),
    ]
}

fn world() -> impl Strategy<Value = World> {
    (
        1..8usize,
        proptest::collection::vec((0..8usize, 0..8usize), 0..14),
        proptest::collection::vec(proptest::bool::weighted(0.15), 8),
    )
        .prop_map(|(n, edges, templates)| World::new(n, &edges, &templates))
}

impl World {
    fn run(&mut self, op: &Op) {
        let n = self.svcs.len();
        if n == 0 {
            return;
        }
        match *op {
            Op::Start(i) => {
                let name = self.svcs[i % n].name.clone();
                let cmds = want_start(&mut self.svcs, &name);
                self.exec(cmds);
            }
            Op::Stop(i) => {
                let cmd = apply(&mut self.svcs, i % n, SvcEvent::Stop);
                self.exec(cmd.map(|c| (i % n, c)).into_iter().collect());
            }
            Op::Remove(i) => {
                // Reload may only remove what nothing depends on.
                let name = self.svcs[i % n].name.clone();
                if self.svcs.iter().any(|s| s.deps.contains(&name)) {
                    return;
                }
                let cmd = apply(&mut self.svcs, i % n, SvcEvent::Removed);
                self.exec(cmd.map(|c| (i % n, c)).into_iter().collect());
            }
            Op::Move(i) => {
                let up = !self.svcs[i % n].facts().all_stopped;
                let cmd = apply(&mut self.svcs, i % n, SvcEvent::Moved { up });
                self.exec(cmd.map(|c| (i % n, c)).into_iter().collect());
            }
            Op::Admit(i) => {
                if self.svcs[i % n].template {
                    let cmd = apply(&mut self.svcs, i % n, SvcEvent::Admit);
                    self.exec(cmd.map(|c| (i % n, c)).into_iter().collect());
                }
            }
            Op::Progress(w, crash) => self.progress(w, crash),
        }
        self.settle();
        self.one_live_per_name();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any history, then shutdown: every instance stops, in reverse
    /// dependency order (checked in `exec`), and the fleet ends quiet.
    #[test]
    fn shutdown_always_ends(mut w in world(), ops in proptest::collection::vec(op(), 0..40)) {
        for op in &ops {
            w.run(op);
        }
        let cmds = shutdown(&mut w.svcs);
        w.exec(cmds);
        w.settle();
        // The instances finish what they were told; nothing new starts.
        for round in 0.. {
            prop_assert!(round < 1000, "shutdown did not end");
            let stopping = w.svcs.iter().flat_map(|s| &s.insts).any(|x| *x != I::Stopped);
            if !stopping {
                break;
            }
            for i in 0..w.svcs.len() {
                for x in &mut w.svcs[i].insts {
                    // Starting instances finish starting (their stop is
                    // pending), then stop when told.
                    *x = match *x {
                        I::Starting => I::Ready,
                        I::Stopping => I::Stopped,
                        other => other,
                    };
                }
            }
            w.settle();
        }
        for s in &w.svcs {
            prop_assert!(matches!(s.phase, Phase::Halting), "{} in {:?}", s.name, s.phase);
        }
        prop_assert!(reconcile(&mut w.svcs).is_empty());
    }

    /// Starts: every StartInstances finds its dependencies ready (checked in
    /// `exec`); once everything that started is ready, nothing is pending.
    #[test]
    fn starts_follow_dependencies(mut w in world(), starts in proptest::collection::vec(0..8usize, 1..6)) {
        for s in &starts {
            w.run(&Op::Start(*s));
        }
        for _ in 0..200 {
            for i in 0..w.svcs.len() {
                for x in &mut w.svcs[i].insts {
                    if *x == I::Starting {
                        *x = I::Ready;
                    }
                }
            }
            w.settle();
        }
        prop_assert!(settled(&w.svcs));
        for s in &w.svcs {
            prop_assert_ne!(s.phase, Phase::StartPending, "{}", s.name);
        }
    }
}

#[test]
fn a_moved_service_comes_back_after_its_old_instances_stopped() {
    let mut w = World::new(1, &[], &[]);
    w.run(&Op::Start(0));
    w.svcs[0].insts[0] = I::Ready;
    w.run(&Op::Move(0));
    assert_eq!(w.svcs[0].phase, Phase::Moving { start: true });
    assert_eq!(w.svcs[0].insts[0], I::Stopping);
    // A start asked for meanwhile does not bring the old instance back.
    w.run(&Op::Start(0));
    assert_eq!(w.svcs[0].insts[0], I::Stopping);
    w.run(&Op::Progress(0, false));
    assert_eq!(w.gone, 1);
    assert_eq!(w.svcs[0].insts[0], I::Starting, "started at its new place");
}

#[test]
fn a_dependency_stops_after_its_dependant_at_shutdown() {
    // s1 depends on s0.
    let mut w = World::new(2, &[(1, 0)], &[]);
    w.run(&Op::Start(1));
    assert_eq!(w.svcs[1].phase, Phase::StartPending);
    assert_eq!(w.svcs[0].insts, vec![I::Starting]);
    w.run(&Op::Progress(0, false));
    assert_eq!(w.svcs[1].insts, vec![I::Starting, I::Starting]);
    for k in 1..3 {
        w.run(&Op::Progress(k, false));
    }
    let cmds = shutdown(&mut w.svcs);
    w.exec(cmds);
    w.settle();
    assert_eq!(w.svcs[0].insts, vec![I::Ready], "waits for s1");
    assert_eq!(w.svcs[1].insts, vec![I::Stopping, I::Stopping]);
    w.run(&Op::Progress(1, false));
    w.run(&Op::Progress(2, false));
    assert_eq!(w.svcs[0].insts, vec![I::Stopping]);
}
