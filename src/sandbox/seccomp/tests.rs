//! Parsing, resolution and compilation, with small profiles. Nothing here
//! installs a filter: the test runner stays unconfined.

use super::*;
use crate::error::Pos;

const X64: ScmpArch = ScmpArch::X8664;

fn parse_ok(text: &str) -> Profile {
    parse(text, Path::new("p.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> Diagnostics {
    parse(text, Path::new("p.json")).expect_err("should not parse")
}

/// One rule around `rule` (a JSON object's members).
fn with_rule(rule: &str) -> String {
    format!(r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read"], {rule}}}]}}"#)
}

fn caps(list: &[&str]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

// ------------------------------------------------------------ parse

#[test]
fn every_action_parses() {
    let cases: &[(&str, Action)] = &[
        ("SCMP_ACT_ALLOW", Action::Allow),
        ("SCMP_ACT_ERRNO", Action::Errno(1)),
        ("SCMP_ACT_KILL_THREAD", Action::KillThread),
        ("SCMP_ACT_KILL", Action::KillThread),
        ("SCMP_ACT_KILL_PROCESS", Action::KillProcess),
        ("SCMP_ACT_TRAP", Action::Trap),
        ("SCMP_ACT_LOG", Action::Log),
    ];
    assert_eq!(cases.len(), ACTIONS.len());
    for (name, action) in cases {
        let p = parse_ok(&with_rule(&format!(r#""action": "{name}""#)));
        assert_eq!(p.rules[0].action, *action, "{name}");
        let p = parse_ok(&format!(r#"{{"defaultAction": "{name}"}}"#));
        assert_eq!(p.default_action, *action, "{name}");
    }
    let p = parse_ok(&with_rule(r#""action": "SCMP_ACT_ERRNO", "errnoRet": 38"#));
    assert_eq!(p.rules[0].action, Action::Errno(38));
    let p = parse_ok(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13}"#);
    assert_eq!(p.default_action, Action::Errno(13));
}

#[test]
fn every_operator_parses() {
    let cases: &[(&str, Op)] = &[
        ("SCMP_CMP_NE", Op::Ne),
        ("SCMP_CMP_LT", Op::Lt),
        ("SCMP_CMP_LE", Op::Le),
        ("SCMP_CMP_EQ", Op::Eq),
        ("SCMP_CMP_GE", Op::Ge),
        ("SCMP_CMP_GT", Op::Gt),
        ("SCMP_CMP_MASKED_EQ", Op::MaskedEq),
    ];
    assert_eq!(cases.len(), OPS.len());
    for (name, op) in cases {
        let p = parse_ok(&with_rule(&format!(
            r#""action": "SCMP_ACT_ALLOW", "args": [{{"index": 2, "value": 16, "valueTwo": 0, "op": "{name}"}}]"#
        )));
        assert_eq!(
            p.rules[0].args,
            vec![ArgCmp {
                index: 2,
                op: *op,
                value: 16,
                value_two: 0
            }]
        );
    }
    let p = parse_ok(&with_rule(
        r#""action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]"#,
    ));
    assert_eq!(p.rules[0].args[0].to_string(), "arg0 & 0xff == 0x8");
}

#[test]
fn docker_fields_parse() {
    let p = parse_ok(
        r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
  "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
  "listenerPath": "",
  "syscalls": [
    {"name": "read", "action": "SCMP_ACT_ALLOW", "args": null, "comment": "",
     "includes": {}, "excludes": {}},
    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
     "includes": {"caps": ["CAP_SYS_PTRACE"], "arches": ["amd64", "arm64"], "minKernel": "4.8"},
     "excludes": {"caps": ["sys_admin"], "arches": ["SCMP_ARCH_X32"]}}
  ]
}"#,
    );
    assert_eq!(
        p.arches,
        Arches::Map(vec![(ScmpArch::X8664, vec![ScmpArch::X86, ScmpArch::X32])])
    );
    assert_eq!(p.rules[0].names, ["read"]);
    assert_eq!(
        p.rules[1].includes,
        Cond {
            caps: caps(&["CAP_SYS_PTRACE"]),
            arches: vec![ScmpArch::X8664, ScmpArch::Aarch64],
            min_kernel: Some((4, 8)),
        }
    );
    assert_eq!(p.rules[1].excludes.caps, ["CAP_SYS_ADMIN"]);
    assert_eq!(p.rules[1].excludes.arches, [ScmpArch::X32]);
}

/// The one error, its message and where it points.
fn one_error(text: &str) -> (String, Option<Pos>, String) {
    let e = parse_err(text);
    assert_eq!(e.len(), 1, "{e}");
    let d = &e.0[0];
    assert_eq!(d.code, Code::ConfigSeccompProfile);
    assert_eq!(d.file.as_deref(), Some(Path::new("p.json")));
    (
        d.message.clone(),
        d.pos,
        d.suggestion.clone().unwrap_or_default(),
    )
}

#[test]
fn an_unknown_field_is_an_error_naming_it() {
    let text = "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [\n  {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},\n  {\"nmaes\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\"}]}";
    let (msg, pos, help) = one_error(text);
    assert!(
        msg.starts_with("syscalls[1].nmaes: unknown field `nmaes`"),
        "{msg}"
    );
    assert_eq!(pos.map(|p| p.line), Some(4));
    assert!(help.contains("did you mean `names`?"), "{help}");
    // At the top level, and inside args and includes.
    let (msg, _, help) = one_error(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": 1}"#);
    assert!(msg.starts_with("defaultErrno: unknown field"), "{msg}");
    assert!(help.contains("defaultErrnoRet"), "{help}");
    let (msg, _, _) = one_error(&with_rule(
        r#""action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ", "mask": 3}]"#,
    ));
    assert!(
        msg.starts_with("syscalls[0].args[0].mask: unknown field"),
        "{msg}"
    );
    let (msg, _, _) = one_error(&with_rule(
        r#""action": "SCMP_ACT_ALLOW", "includes": {"capabilities": ["CAP_SYS_ADMIN"]}"#,
    ));
    assert!(
        msg.starts_with("syscalls[0].includes.capabilities: unknown field"),
        "{msg}"
    );
}

#[test]
fn an_unknown_action_is_an_error() {
    let (msg, pos, help) = one_error(&with_rule(r#""action": "SCMP_ACT_ALOW""#));
    assert_eq!(msg, "syscalls[0].action: unknown action `SCMP_ACT_ALOW`");
    assert_eq!(
        pos,
        Some(Pos {
            line: 1,
            column: 70
        })
    );
    assert_eq!(help, "did you mean `SCMP_ACT_ALLOW`?");
    let (msg, _, _) = one_error(r#"{"defaultAction": "ALLOW_ALL"}"#);
    assert!(
        msg.contains("defaultAction: unknown action `ALLOW_ALL`"),
        "{msg}"
    );
    for refused in ["SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"] {
        let (msg, _, _) = one_error(&with_rule(&format!(r#""action": "{refused}""#)));
        assert!(
            msg.contains(&format!("{refused} is not supported")),
            "{msg}"
        );
    }
    let (msg, _, _) =
        one_error(r#"{"defaultAction": "SCMP_ACT_LOG", "syscalls": [{"names": ["read"]}]}"#);
    assert!(msg.contains("syscalls[0].action: missing"), "{msg}");
    let (msg, _, _) = one_error(r#"{"syscalls": []}"#);
    assert!(msg.contains("defaultAction: missing"), "{msg}");
}

#[test]
fn errno_values_are_checked() {
    let (msg, _, _) = one_error(&with_rule(r#""action": "SCMP_ACT_ALLOW", "errnoRet": 1"#));
    assert!(
        msg.starts_with("syscalls[0].errnoRet: an errno return goes with SCMP_ACT_ERRNO"),
        "{msg}"
    );
    let (msg, _, _) = one_error(&with_rule(
        r#""action": "SCMP_ACT_ERRNO", "errnoRet": 5000"#,
    ));
    assert!(msg.contains("5000 is not an errno"), "{msg}");
    let (msg, _, _) = one_error(r#"{"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}"#);
    assert!(msg.starts_with("defaultErrnoRet:"), "{msg}");
    let (msg, pos, _) = one_error(&with_rule(r#""action": "SCMP_ACT_ERRNO", "errnoRet": -1"#));
    assert!(
        msg.starts_with("syscalls[0].errnoRet: invalid value"),
        "{msg}"
    );
    assert!(pos.is_some());
}

#[test]
fn bad_arguments_are_errors() {
    let cases = [
        (
            r#"{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}"#,
            "args[0].index: 6 is not an argument position",
        ),
        (
            r#"{"value": 1, "op": "SCMP_CMP_EQ"}"#,
            "args[0]: missing `index`",
        ),
        (
            r#"{"index": 0, "op": "SCMP_CMP_EQ"}"#,
            "args[0]: missing `value`",
        ),
        (r#"{"index": 0, "value": 1}"#, "args[0]: missing `op`"),
        (
            r#"{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}"#,
            "args[0].op: unknown operator `SCMP_CMP_EQUAL`",
        ),
        (
            r#"{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}"#,
            "args[0].valueTwo: valueTwo is only used by SCMP_CMP_MASKED_EQ",
        ),
        (
            r#"{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}, {"index": 0, "value": 9, "op": "SCMP_CMP_LE"}"#,
            "args[1].index: argument 0 is already compared in syscalls[0].args[0]",
        ),
    ];
    for (args, want) in cases {
        let (msg, _, _) = one_error(&with_rule(&format!(
            r#""action": "SCMP_ACT_ALLOW", "args": [{args}]"#
        )));
        assert!(msg.contains(want), "{args}: {msg}");
    }
}

#[test]
fn bad_names_arches_caps_kernels_and_flags_are_errors() {
    let cases = [
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0]: no system call names",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0]: no system call names",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].name: both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["re ad"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "syscalls[0].names[0]: \"re ad\" is not a system call name",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "architectures[0]: unknown architecture `SCMP_ARCH_Z80`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["amd64"]}"#,
            "architectures[0]: unknown architecture `amd64`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": [], "archMap": []}"#,
            "archMap: both",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"subArchitectures": []}]}"#,
            "archMap[0]: missing `architecture`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#,
            "flags[0]: SECCOMP_FILTER_FLAG_SPEC_ALLOW is not supported",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["FLAG_X"]}"#,
            "flags[0]: unknown flag `FLAG_X`",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/l.sock"}"#,
            "listenerPath: user notification is not supported",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerMetadata": "x"}"#,
            "listenerMetadata: user notification is not supported",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}"#,
            "syscalls: invalid type",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.0[0].message.contains(want), "{text}: {e}");
    }
    let cases = [
        (
            r#""includes": {"caps": ["CAP_SYS_ADMN"]}"#,
            "includes.caps[0]: `CAP_SYS_ADMN` is not a capability",
            "CAP_SYS_ADMIN",
        ),
        (
            r#""excludes": {"arches": ["amd46"]}"#,
            "excludes.arches[0]: unknown architecture `amd46`",
            "amd64",
        ),
        (
            r#""includes": {"minKernel": "4"}"#,
            "includes.minKernel: \"4\" is not a kernel version",
            "MAJOR.MINOR",
        ),
    ];
    for (filter, want, help) in cases {
        let (msg, _, h) = one_error(&with_rule(&format!(
            r#""action": "SCMP_ACT_ALLOW", {filter}"#
        )));
        assert!(msg.contains(want), "{filter}: {msg}");
        assert!(h.contains(help), "{filter}: {h}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = parse_err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read"], "action": "SCMP_ACT_NOPE"},
  {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(e.len(), 2, "{e}");
    assert_eq!(e.0[0].pos.map(|p| p.line), Some(2));
    assert_eq!(e.0[1].pos.map(|p| p.line), Some(3));
}

#[test]
fn syntax_errors_give_line_and_column() {
    let (msg, pos, _) = one_error("{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [,]}");
    assert_eq!(msg, "not valid JSON");
    assert_eq!(pos.map(|p| p.line), Some(2));
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_kernel("5.10"), Some((5, 10)));
    assert_eq!(parse_kernel("5"), None);
    assert_eq!(parse_kernel("5.x"), None);
    assert_eq!(parse_kernel("5.10.1"), None);
    let (a, _) = host_kernel();
    assert!(a >= 3, "host kernel {:?}", host_kernel());
}

// ------------------------------------------------------------ resolve

/// A profile whose rules differ only in their conditions; each allows a
/// different call, so the applied names say which rules applied.
fn conditional_profile() -> Profile {
    parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
  {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]}},
  {"names": ["iopl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x86"]}},
  {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
  {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
  {"names": ["write"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
  {"names": ["openat2"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "6.0"}},
  {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
   "includes": {"caps": ["CAP_SYS_PTRACE"], "minKernel": "4.8"}, "excludes": {"arches": ["x86"]}},
  {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}
]}"#,
    )
}

fn applied(r: &ResolvedProfile) -> Vec<&str> {
    let mut names: Vec<&str> = r
        .rules
        .iter()
        .flat_map(|x| x.names.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn includes_and_excludes_follow_caps_arch_and_kernel() {
    let p = conditional_profile();
    /// (caps, arch, kernel, the names applied)
    type Case<'a> = (&'a [&'a str], ScmpArch, (u32, u32), &'a [&'a str]);
    let cases: &[Case] = &[
        (&[], X64, (6, 1), &["iopl", "read", "bpf", "clone", "write"]),
        (
            &["CAP_SYS_ADMIN"],
            X64,
            (6, 1),
            &["iopl", "read", "bpf", "mount", "write"],
        ),
        (
            &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
            X64,
            (6, 1),
            &["iopl", "read", "bpf", "mount", "ptrace", "write", "kcmp"],
        ),
        (&["CAP_BPF"], X64, (6, 1), &["iopl", "read", "bpf", "write"]),
        (&[], ScmpArch::Aarch64, (6, 1), &["read", "bpf", "clone"]),
        (
            &[],
            ScmpArch::X86,
            (6, 1),
            &["iopl", "read", "bpf", "clone", "write"],
        ),
        (
            &["CAP_SYS_PTRACE"],
            ScmpArch::X86,
            (6, 1),
            &["iopl", "read", "bpf", "clone", "write"],
        ),
        (
            &["CAP_SYS_PTRACE"],
            X64,
            (4, 8),
            &["iopl", "read", "clone", "write", "openat2", "kcmp"],
        ),
        (
            &["CAP_SYS_PTRACE"],
            X64,
            (4, 7),
            &["iopl", "read", "clone", "write", "openat2"],
        ),
        (
            &[],
            X64,
            (5, 8),
            &["iopl", "read", "bpf", "clone", "write", "openat2"],
        ),
        (
            &[],
            X64,
            (5, 7),
            &["iopl", "read", "clone", "write", "openat2"],
        ),
    ];
    for (c, arch, kernel, want) in cases {
        let r = resolve(&p, &caps(c), *arch, *kernel);
        // Names are looked up for the architecture resolved for; iopl is
        // x86's, so it is unknown on aarch64 (and set aside).
        let mut want: Vec<&str> = want.to_vec();
        want.sort_unstable();
        assert_eq!(
            applied(&r),
            want,
            "caps {c:?} on {arch:?} kernel {kernel:?}"
        );
        // Nothing is lost: every rule is applied or said not to be.
        assert_eq!(r.rules.len() + r.not_applied.len(), p.rules.len());
    }
}

#[test]
fn rules_not_applied_say_why() {
    let p = conditional_profile();
    let r = resolve(&p, &caps(&["CAP_BPF"]), ScmpArch::Aarch64, (4, 0));
    let why: Vec<(usize, &str)> = r
        .not_applied
        .iter()
        .map(|n| (n.index, n.reason.as_str()))
        .collect();
    assert_eq!(
        why,
        [
            (1, "needs CAP_SYS_ADMIN"),
            (2, "needs CAP_SYS_ADMIN and CAP_SYS_PTRACE"),
            (3, "only on x86_64, x86"),
            (4, "needs kernel 5.8"),
            (5, "excluded with CAP_BPF"),
            (6, "excluded on aarch64"),
            (8, "needs CAP_SYS_PTRACE"),
            (9, "ERRNO(EPERM) is the default action"),
        ]
    );
    let r = resolve(&p, &[], X64, (6, 2));
    assert!(
        r.not_applied
            .iter()
            .any(|n| n.index == 7 && n.reason == "excluded from kernel 6.0")
    );
}

#[test]
fn architectures_and_arch_map() {
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
  {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
  {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}]}"#,
    );
    assert_eq!(
        resolve(&p, &[], X64, (6, 1)).arches,
        [X64, ScmpArch::X86, ScmpArch::X32]
    );
    assert_eq!(
        resolve(&p, &[], ScmpArch::Aarch64, (6, 1)).arches,
        [ScmpArch::Aarch64, ScmpArch::Arm]
    );
    assert_eq!(
        resolve(&p, &[], ScmpArch::S390X, (6, 1)).arches,
        [ScmpArch::S390X]
    );
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]}"#,
    );
    assert_eq!(resolve(&p, &[], X64, (6, 1)).arches, [X64, ScmpArch::X86]);
}

#[test]
fn names_the_architecture_lacks_are_set_aside_and_counted() {
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read", "_llseek", "socketcall", "no_such_call", "write"], "action": "SCMP_ACT_ALLOW"},
  {"names": ["no_such_call"], "action": "SCMP_ACT_KILL"}]}"#,
    );
    let r = resolve(&p, &[], X64, (6, 1));
    assert_eq!(applied(&r), ["read", "write"]);
    assert_eq!(r.unknown, ["_llseek", "no_such_call", "socketcall"]);
    assert_eq!(r.rules.len(), 1, "a rule left with no names is dropped");
    // With x86 in the filter, x86's calls are known.
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "syscalls": [
  {"names": ["read", "_llseek", "socketcall"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let r = resolve(&p, &[], X64, (6, 1));
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    assert!(compile(&r).is_ok());
}

// ------------------------------------------------------------ compile

/// BPF_RET | BPF_K
const RET_K: u16 = 0x06;

fn compiled(text: &str, with: &[&str]) -> Result<Vec<Insn>, Diagnostic> {
    compile(&resolve(
        &parse_ok(text),
        &caps(with),
        ScmpArch::native(),
        host_kernel(),
    ))
}

#[test]
fn compile_yields_a_program_ending_in_a_return() {
    let prog = compiled(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
  {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
  {"names": ["getppid"], "action": "SCMP_ACT_TRAP"},
  {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
  {"names": ["gettid"], "action": "SCMP_ACT_KILL_THREAD"},
  {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
  {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NE"}]},
  {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_LT"}, {"index": 2, "value": 3, "op": "SCMP_CMP_LE"}]},
  {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_GE"}, {"index": 2, "value": 3, "op": "SCMP_CMP_GT"}]},
  {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
]}"#,
        &[],
    )
    .unwrap();
    assert!(prog.len() > 10, "{} instructions", prog.len());
    let last = prog.last().unwrap();
    assert_eq!(last.0, RET_K, "last instruction {last:?}");
    // The program returns each action somewhere (SECCOMP_RET_* values).
    let rets: Vec<u32> = prog.iter().filter(|i| i.0 == RET_K).map(|i| i.3).collect();
    for want in [
        0x7fff_0000,
        0x0005_0001,
        0x8000_0000,
        0x0003_0000,
        0x7ffc_0000,
        0,
    ] {
        assert!(rets.contains(&want), "no return of {want:#x} in {rets:x?}");
    }
}

#[test]
fn a_default_allow_profile_compiles() {
    let prog = compiled(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
        &[],
    )
    .unwrap();
    // Allow is the default; the last return is for other architectures.
    assert!(prog.contains(&(RET_K, 0, 0, 0x7fff_0000)), "{prog:x?}");
    assert_eq!(prog.last().unwrap(), &(RET_K, 0, 0, 0x8000_0000));
}

#[test]
fn rules_libseccomp_would_silently_merge_are_errors() {
    let e = compiled(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
  {"names": ["read", "write"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
        &[],
    )
    .unwrap_err();
    assert!(
        e.message.contains(
            "syscalls[1]: `write` gets KILL_PROCESS unconditionally, but syscalls[0] gives it ALLOW"
        ),
        "{e}"
    );
    let e = compiled(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 2, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
  {"names": ["openat"], "action": "SCMP_ACT_ALLOW"}]}"#,
        &[],
    )
    .unwrap_err();
    assert!(e.message.contains("under conditions"), "{e}");
    // The same action twice is no conflict, and includes/excludes that
    // never both apply are none either.
    compiled(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
  {"names": ["clone"], "action": "SCMP_ACT_ALLOW"},
  {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
  {"names": ["clone3"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#,
        &["CAP_SYS_ADMIN"],
    )
    .unwrap();
}

#[test]
fn both_builtin_profiles_parse_resolve_and_compile() {
    for (name, _) in BUILTIN {
        for with in [
            &[][..],
            &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE"][..],
        ] {
            let (r, prog) = build(builtin(name).unwrap(), &builtin_label(name), &caps(with))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                prog.len() > 50 && prog.len() <= MAX_INSNS,
                "{name}: {}",
                prog.len()
            );
            assert_eq!(prog.last().unwrap().0, RET_K);
            assert!(r.comment.is_some(), "{name} documents itself");
            // Names libseccomp 2.5 does not know (newer calls) are the only
            // ones set aside on x86_64.
            if r.arch == X64 {
                for n in &r.unknown {
                    assert!(
                        libseccomp::ScmpSyscall::from_name(n).is_err(),
                        "{name}: {n}"
                    );
                }
            }
            let allowed: Vec<&str> = r
                .rules
                .iter()
                .filter(|x| x.args.is_empty() && x.action == Action::Allow)
                .flat_map(|x| x.names.iter().map(String::as_str))
                .collect();
            for must in [
                "read",
                "write",
                "execve",
                "exit_group",
                "mmap",
                "rt_sigreturn",
            ] {
                assert!(allowed.contains(&must), "{name} must allow {must}");
            }
            let never = [
                "keyctl",
                "add_key",
                "request_key",
                "kexec_load",
                "userfaultfd",
            ];
            for n in never {
                assert!(!applied(&r).contains(&n), "{name} allows {n}");
            }
        }
    }
    assert!(builtin("unconfined").is_none());
    assert_eq!(load(&Seccomp::Unconfined, &[]).unwrap(), Vec::<Insn>::new());
    assert!(
        !load(&Seccomp::Builtin("default".into()), &[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_default_profile_opens_calls_for_capabilities() {
    let text = builtin("default").unwrap();
    let p = parse_ok(text);
    let with = |c: &[&str]| resolve(&p, &caps(c), X64, (6, 1));
    let unconditional = |r: &ResolvedProfile, n: &str| {
        r.rules.iter().any(|x| {
            x.args.is_empty() && x.action == Action::Allow && x.names.iter().any(|m| m == n)
        })
    };
    let none = with(&[]);
    for n in [
        "mount",
        "unshare",
        "setns",
        "ptrace",
        "bpf",
        "init_module",
        "reboot",
        "clone",
    ] {
        assert!(!unconditional(&none, n), "allows {n} without capabilities");
    }
    let admin = with(&["CAP_SYS_ADMIN"]);
    for n in ["mount", "umount2", "unshare", "setns", "clone", "clone3"] {
        assert!(unconditional(&admin, n), "CAP_SYS_ADMIN should open {n}");
    }
    assert!(!unconditional(&admin, "ptrace"));
    assert!(unconditional(&with(&["CAP_SYS_PTRACE"]), "ptrace"));
    assert!(!unconditional(&with(&["CAP_SYS_PTRACE"]), "keyctl"));
}

#[test]
fn missing_and_unknown_builtins() {
    let e = load(&Seccomp::Builtin("nope".into()), &[]).unwrap_err();
    assert!(
        e.0[0]
            .message
            .contains("no built-in seccomp profile named `nope`")
    );
    let e = load(&Seccomp::File("/no/such/profile.json".into()), &[]).unwrap_err();
    assert!(e.0[0].message.contains("cannot read"));
    assert!(e.0[0].suggestion.is_some());
}
