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
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": true, "syscalls": [
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

// ------------------------------------------------------------ unknown names

#[test]
fn a_name_no_architecture_has_is_an_error_with_a_suggestion() {
    let text = "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [\n  {\"names\": [\"read\", \"keyctll\"], \"action\": \"SCMP_ACT_ALLOW\"}]}";
    let (msg, pos, help) = one_error(text);
    assert!(
        msg.starts_with(
            "syscalls[0].names[1]: `keyctll` is not a system call on any architecture libseccomp"
        ),
        "{msg}"
    );
    assert_eq!(
        pos,
        Some(Pos {
            line: 3,
            column: 22
        })
    );
    assert!(help.starts_with("did you mean `keyctl`?"), "{help}");
    assert!(help.contains("\"ignore_unknown\": true"), "{help}");
    // Docker's single-name form points at `name`.
    let (msg, _, help) = one_error(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "opneat", "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(msg.starts_with("syscalls[0].name: `opneat`"), "{msg}");
    assert!(help.starts_with("did you mean `openat`?"), "{help}");
    // Every misspelt name is reported.
    let e = parse_err(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["raed", "wirte"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(e.len(), 2, "{e}");
}

#[test]
fn names_of_other_architectures_are_no_error_and_ignore_unknown_sets_the_rest_aside() {
    // socketcall is x86's, s390_pci_mmio_write s390's: set aside on x86_64.
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "socketcall", "s390_pci_mmio_write"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(!p.ignore_unknown);
    let r = resolve(&p, &[], X64, (6, 1));
    assert_eq!(r.unknown, ["s390_pci_mmio_write", "socketcall"]);
    let p = parse_ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": true, "syscalls": [{"names": ["read", "keyctll"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(p.ignore_unknown);
    assert_eq!(resolve(&p, &[], X64, (6, 1)).unknown, ["keyctll"]);
    let (msg, _, _) = one_error(r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": "yes"}"#);
    assert!(msg.starts_with("ignore_unknown: invalid type"), "{msg}");
}

/// Calls newer than libseccomp 2.5.4 that the built-in profiles may name
/// (kept here so a typo in a built-in profile still fails a test).
const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "mseal",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "uretprobe",
];

#[test]
fn builtin_profiles_name_only_calls_some_libseccomp_knows() {
    for (name, text) in BUILTIN {
        let p = parse_ok(text);
        let unknown: Vec<&str> = p
            .rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .filter(|n| !is_syscall_anywhere(n))
            .collect();
        for n in &unknown {
            assert!(
                NEWER_THAN_LIBSECCOMP.contains(n),
                "{name}: `{n}` is no system call"
            );
        }
        assert!(
            unknown.is_empty() || p.ignore_unknown,
            "{name}: {unknown:?}"
        );
    }
}

// ------------------------------------------------------------ running programs

/// `struct seccomp_data` for a call (little-endian hosts, as the tests run).
struct Call {
    arch: u32,
    nr: u32,
    args: [u64; 6],
}

const AUDIT_X86_64: u32 = 0xc000_003e;

fn call(nr: i64, args: &[u64]) -> Call {
    let mut a = [0; 6];
    a[..args.len()].copy_from_slice(args);
    Call {
        arch: AUDIT_X86_64,
        nr: u32::try_from(nr).unwrap(),
        args: a,
    }
}

/// A classic BPF interpreter, enough for libseccomp's programs and the
/// ENOSYS stub: what `prog` returns for `c`.
fn run(prog: &[Insn], c: &Call) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => c.nr,
            4 => c.arch,
            16..=63 => {
                let i = ((off - 16) / 8) as usize;
                let v = c.args[i];
                let half = if off.is_multiple_of(8) { v } else { v >> 32 };
                u32::try_from(half & 0xffff_ffff).unwrap()
            }
            _ => panic!("load of offset {off}"),
        }
    };
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    loop {
        let (code, jt, jf, k) = prog[pc];
        pc += 1;
        let src = if code & 0x08 != 0 { x } else { k };
        match code & 0x07 {
            0x00 => match code & 0xe0 {
                0x20 => a = word(k),
                0x00 => a = k,
                0x60 => a = mem[k as usize],
                m => panic!("ld mode {m:#x}"),
            },
            0x01 => match code & 0xe0 {
                0x00 => x = k,
                0x60 => x = mem[k as usize],
                m => panic!("ldx mode {m:#x}"),
            },
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => {
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a << src,
                    0x70 => a >> src,
                    0xa0 => a ^ src,
                    op => panic!("alu {op:#x}"),
                }
            }
            0x05 => {
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    op => panic!("jmp {op:#x}"),
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            0x06 => return if code & 0x10 != 0 { a } else { k },
            _ => match code {
                0x07 => x = a,
                0x87 => a = x,
                _ => panic!("misc {code:#x}"),
            },
        }
    }
}

const ALLOW: u32 = 0x7fff_0000;
const KILL_PROCESS: u32 = 0x8000_0000;
const fn errno_ret(e: i32) -> u32 {
    0x0005_0000 | e.cast_unsigned()
}

fn builtin_prog(name: &str, with: &[&str], extra: &Extra) -> Vec<Insn> {
    let (_, prog) = build_with(
        builtin(name).unwrap(),
        &builtin_label(name),
        &caps(with),
        extra,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    prog
}

/// What errno the call `f` describes ends with (0 when it succeeds) in a
/// cloned child with `prog` installed (none when empty). no_new_privs goes
/// first, so no privilege is needed, and the filter never reaches the test
/// runner. `f` runs here, in the runner; the child makes the raw call only
/// (`sys::seccomp::errno_under_filter`) and leaves with _exit.
fn in_child(prog: &[Insn], f: impl FnOnce() -> crate::sys::seccomp::Syscall) -> i32 {
    let filter: Vec<libc::sock_filter> = prog
        .iter()
        .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
        .collect();
    let status = crate::sys::seccomp::errno_under_filter(&filter, f())
        .unwrap_or_else(|e| panic!("clone: {e}"));
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    let code = libc::WEXITSTATUS(status);
    assert!(
        code < 199,
        "the child could not install the filter ({code})"
    );
    code
}

/// The system call `nr` with `args` (integers, or addresses of the test's
/// own buffers, which the child's copy holds), for [`in_child`].
fn raw(nr: libc::c_long, args: &[libc::c_long]) -> crate::sys::seccomp::Syscall {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    crate::sys::seccomp::Syscall {
        nr,
        args: [a(0), a(1), a(2), a(3), a(4), a(5)],
    }
}

// ------------------------------------------------------------ ENOSYS

const TINY: &str = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read", "write", "exit", "exit_group", "getpid", "getppid", "rt_sigreturn"], "action": "SCMP_ACT_ALLOW"}]}"#;

#[test]
fn calls_above_the_highest_named_get_enosys() {
    let r = resolve(&parse_ok(TINY), &[], X64, (6, 1));
    assert_eq!(r.named_max, [(X64, 231)], "exit_group is 231 on x86_64");
    let prog = compile(&r).unwrap();
    assert_eq!(&prog[..8], &enosys::stub(&[(X64, 231)])[..]);
    let enosys = errno_ret(libc::ENOSYS);
    for (nr, want) in [
        (libc::SYS_read, ALLOW),
        (libc::SYS_exit_group, ALLOW),
        (libc::SYS_getuid, errno_ret(libc::EPERM)),
        (libc::SYS_kill, errno_ret(libc::EPERM)),
        (libc::SYS_clone3, enosys),
        (libc::SYS_faccessat2, enosys),
        (1000, enosys),
    ] {
        assert_eq!(run(&prog, &call(nr, &[])), want, "nr {nr}");
    }
    // x32 and i386 calls are not covered: libseccomp's program kills them.
    assert_eq!(run(&prog, &call(0x4000_0000 + 500, &[])), KILL_PROCESS);
    let i386 = Call {
        arch: 0x4000_0003,
        nr: 435,
        args: [0; 6],
    };
    assert_eq!(run(&prog, &i386), KILL_PROCESS);
    // Any errno as default, yes; ENOSYS itself or another action, no stub.
    let with_default = |d: &str| TINY.replace(r#""SCMP_ACT_ERRNO""#, d);
    let p = compiled(
        &with_default(r#""SCMP_ACT_ERRNO", "defaultErrnoRet": 13"#),
        &[],
    )
    .unwrap();
    assert_eq!(
        run(&p, &call(libc::SYS_getuid, &[])),
        errno_ret(libc::EACCES)
    );
    assert_eq!(run(&p, &call(libc::SYS_clone3, &[])), enosys);
    for d in [
        r#""SCMP_ACT_KILL_PROCESS""#,
        r#""SCMP_ACT_ERRNO", "defaultErrnoRet": 38"#,
    ] {
        let p = compiled(&with_default(d), &[]).unwrap();
        assert!(!p.starts_with(&enosys::stub(&[(X64, 231)])), "{d}: a stub");
        assert_ne!(run(&p, &call(libc::SYS_clone3, &[])), ALLOW);
    }
}

#[test]
fn x32_calls_are_checked_against_x32_numbers() {
    let r = resolve(
        &parse_ok(&TINY.replace(
            r#""syscalls""#,
            r#""architectures": ["SCMP_ARCH_X32"], "syscalls""#,
        )),
        &[],
        X64,
        (6, 1),
    );
    let x32_max = r
        .named_max
        .iter()
        .find(|(a, _)| *a == ScmpArch::X32)
        .unwrap()
        .1;
    assert!(x32_max > 0x4000_0000, "{x32_max:#x}");
    let prog = compile(&r).unwrap();
    let x32 = |n: u32| call(i64::from(0x4000_0000 | n), &[]);
    assert_eq!(run(&prog, &x32(0)), ALLOW, "x32 read");
    assert_eq!(run(&prog, &x32(1000)), errno_ret(libc::ENOSYS));
    assert_eq!(
        run(&prog, &call(libc::SYS_clone3, &[])),
        errno_ret(libc::ENOSYS)
    );
}

#[test]
fn enosys_in_a_child() {
    let prog = compiled(TINY, &[]).unwrap();
    assert_eq!(in_child(&prog, || raw(libc::SYS_getpid, &[])), 0);
    assert_eq!(in_child(&prog, || raw(libc::SYS_getuid, &[])), libc::EPERM);
    assert_eq!(
        in_child(&prog, || raw(libc::SYS_clone3, &[0, 0])),
        libc::ENOSYS
    );
    assert_eq!(
        in_child(&prog, || raw(libc::SYS_faccessat2, &[-100, 0, 0, 0])),
        libc::ENOSYS
    );
    // Unconfined, clone3 with a null argument is EFAULT or EINVAL: the
    // ENOSYS above was the filter's.
    assert_ne!(
        in_child(&[], || raw(libc::SYS_clone3, &[0, 0])),
        libc::ENOSYS
    );
    // The built-in profile refuses clone3 by name with ENOSYS; its newest
    // calls stay allowed (getrandom, 318, is below the highest it names).
    let prog = builtin_prog("default", &[], &Extra::default());
    let mut buf = [0u8; 8];
    let p = buf.as_mut_ptr() as libc::c_long;
    assert_eq!(in_child(&prog, || raw(libc::SYS_getrandom, &[p, 8, 0])), 0);
    assert_eq!(in_child(&prog, || raw(1000, &[])), libc::ENOSYS);
}

// ------------------------------------------------------------ TIOCSTI

const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;

#[test]
fn the_default_profile_refuses_tiocsti_and_tioclinux_on_the_low_32_bits() {
    let prog = builtin_prog("default", &[], &Extra::default());
    let ioctl = |req: u64| run(&prog, &call(libc::SYS_ioctl, &[0, req, 0]));
    for req in [
        TIOCSTI,
        TIOCLINUX,
        TIOCSTI | 1 << 32,
        TIOCLINUX | 0xffff_ffff_0000_0000,
    ] {
        assert_eq!(ioctl(req), errno_ret(libc::EPERM), "{req:#x}");
    }
    for req in [
        0u64,
        0x5401, // TCGETS
        0x5411,
        0x5413, // TIOCGWINSZ
        0x541b, // FIONREAD
        0x541d,
        0x8000_5412,
        0x0001_5412,
        0x5412 << 4,
        0xffff_ffff,
        0xffff_ffff_8004_5413, // musl sign-extends _IOR requests
        u64::MAX,
    ] {
        assert_eq!(ioctl(req), ALLOW, "{req:#x}");
    }
    let strict = builtin_prog("strict", &[], &Extra::default());
    let ioctl = |req: u64| run(&strict, &call(libc::SYS_ioctl, &[0, req, 0]));
    assert_eq!(ioctl(TIOCSTI), errno_ret(libc::EPERM));
    assert_eq!(ioctl(TIOCLINUX), errno_ret(libc::EPERM));
    assert_eq!(ioctl(0x541b), ALLOW);
}

#[test]
fn tiocsti_fails_in_a_child_while_other_ioctls_work() {
    let (pipe_r, pipe_w) = rustix::pipe::pipe().unwrap();
    let fd = libc::c_long::from(std::os::fd::AsRawFd::as_raw_fd(&pipe_r));
    let mut n: libc::c_int = 0;
    let np = (&raw mut n) as libc::c_long;
    let mut ch = b'x';
    let cp = (&raw mut ch) as libc::c_long;
    let mut tio = [0u8; 64];
    let tp = tio.as_mut_ptr() as libc::c_long;
    let ioctl = |req: u64, arg: libc::c_long| {
        let req = libc::c_long::from_ne_bytes(req.to_ne_bytes());
        move || raw(libc::SYS_ioctl, &[fd, req, arg])
    };
    for name in ["default", "strict"] {
        let prog = builtin_prog(name, &[], &Extra::default());
        // Unconfined, TIOCSTI on a pipe is ENOTTY: EPERM is the filter's.
        assert_eq!(in_child(&[], ioctl(TIOCSTI, cp)), libc::ENOTTY);
        assert_eq!(in_child(&prog, ioctl(TIOCSTI, cp)), libc::EPERM, "{name}");
        assert_eq!(in_child(&prog, ioctl(TIOCLINUX, cp)), libc::EPERM, "{name}");
        assert_eq!(
            in_child(&prog, ioctl(TIOCSTI | 1 << 32, cp)),
            libc::EPERM,
            "{name}"
        );
        // FIONREAD works; TCGETS reaches the kernel, which says ENOTTY.
        assert_eq!(in_child(&prog, ioctl(0x541b, np)), 0, "{name}");
        assert_eq!(in_child(&prog, ioctl(0x5401, tp)), libc::ENOTTY, "{name}");
    }
    drop((pipe_r, pipe_w));
}

// ------------------------------------------------------------ extra walls

fn all_walls() -> Extra {
    Extra {
        address_families: Some(vec![1, 2, 10, 16]),
        restrict_realtime: true,
        protect_clock: true,
        lock_personality: true,
        restrict_suid_sgid: true,
    }
}

#[test]
fn walls_compile_onto_every_profile_and_architecture() {
    for name in ["default", "strict"] {
        for with in [&[][..], &["CAP_SYS_TIME", "CAP_SYS_ADMIN"][..]] {
            builtin_prog(name, with, &all_walls());
        }
    }
    // A blocklist covering x86_64, x86 and x32 (the 32-bit ABIs compare
    // only the low words).
    let (r, prog) = build_with(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]}"#,
        Path::new("p.json"),
        &[],
        &all_walls(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(prog.len() <= MAX_INSNS);
    assert!(
        r.rules.iter().any(|x| x.names == ["clock_settime64"]),
        "x86 has it"
    );
    let per = |x: u64| run(&prog, &call(libc::SYS_personality, &[x]));
    assert_eq!(per(0), ALLOW);
    assert_eq!(per(0xffff_ffff), ALLOW);
    assert_eq!(per(8), errno_ret(libc::EPERM));
    assert_eq!(per(0x1_0000_0000), errno_ret(libc::EPERM));
    let sock = |f: u64| run(&prog, &call(libc::SYS_socket, &[f, 1, 0]));
    assert_eq!(sock(1), ALLOW);
    assert_eq!(sock(17), errno_ret(libc::EAFNOSUPPORT));
    assert_eq!(sock(0x1_0000_0001), errno_ret(libc::EAFNOSUPPORT));
}

#[test]
fn walls_hold_in_a_child() {
    let none = Extra::default();
    let walls = all_walls();
    let default = builtin_prog("default", &[], &none);
    let walled = builtin_prog("default", &[], &walls);
    // Sockets: unix works, packet is refused as if the kernel lacked it.
    let socket =
        |f: libc::c_int, t: libc::c_int| move || raw(libc::SYS_socket, &[f.into(), t.into(), 0]);
    assert_eq!(
        in_child(&walled, socket(libc::AF_UNIX, libc::SOCK_STREAM)),
        0
    );
    assert_eq!(
        in_child(&walled, socket(libc::AF_INET, libc::SOCK_DGRAM)),
        0
    );
    assert_eq!(
        in_child(&walled, socket(libc::AF_PACKET, libc::SOCK_RAW)),
        libc::EAFNOSUPPORT
    );
    assert_eq!(
        in_child(&walled, socket(libc::AF_KEY, 3)),
        libc::EAFNOSUPPORT
    );
    // Personality: PER_LINUX32 is allowed by default, refused with the lock.
    let per = |x: libc::c_long| move || raw(libc::SYS_personality, &[x]);
    assert_eq!(in_child(&default, per(8)), 0);
    assert_eq!(in_child(&walled, per(8)), libc::EPERM);
    assert_eq!(in_child(&walled, per(0xffff_ffff)), 0);
    assert_eq!(in_child(&walled, per(0)), 0);
    // Real-time scheduling.
    let prio = [1 as libc::c_int];
    let pp = prio.as_ptr() as libc::c_long;
    let zero = [0 as libc::c_int];
    let zp = zero.as_ptr() as libc::c_long;
    let sched = |policy: libc::c_int, param: libc::c_long| {
        move || raw(libc::SYS_sched_setscheduler, &[0, policy.into(), param])
    };
    assert_eq!(in_child(&walled, sched(libc::SCHED_FIFO, pp)), libc::EPERM);
    assert_eq!(in_child(&walled, sched(libc::SCHED_RR, pp)), libc::EPERM);
    assert_eq!(in_child(&walled, sched(libc::SCHED_BATCH, zp)), 0);
    // As root the default profile alone lets SCHED_FIFO through.
    if rustix::process::geteuid().is_root() {
        assert_eq!(in_child(&default, sched(libc::SCHED_FIFO, pp)), 0);
    }
    // The clock: CAP_SYS_TIME opens clock_settime in the default profile;
    // CLOCK_MONOTONIC cannot be set, so the kernel's answer is EINVAL and
    // the wall's is EPERM (and no test ever sets the real clock).
    let ts = [0 as libc::c_long; 2];
    let tp = ts.as_ptr() as libc::c_long;
    let settime = move || raw(libc::SYS_clock_settime, &[libc::CLOCK_MONOTONIC.into(), tp]);
    let timed = builtin_prog("default", &["CAP_SYS_TIME"], &none);
    let timed_walled = builtin_prog("default", &["CAP_SYS_TIME"], &walls);
    assert_eq!(in_child(&timed, settime), libc::EINVAL);
    assert_eq!(in_child(&timed_walled, settime), libc::EPERM);
    assert_eq!(
        in_child(&timed_walled, || raw(libc::SYS_adjtimex, &[0])),
        libc::EPERM
    );
}

// ------------------------------------------------------------ setuid wall

fn suid_only() -> Extra {
    Extra {
        restrict_suid_sgid: true,
        ..Extra::default()
    }
}

#[test]
fn the_setuid_wall_in_the_compiled_programs() {
    let creat = u64::try_from(libc::O_CREAT | libc::O_WRONLY).unwrap();
    let tmpfile = u64::try_from(libc::O_TMPFILE | libc::O_WRONLY).unwrap();
    let rdonly = u64::try_from(libc::O_RDONLY).unwrap();
    let at = 0xffff_ff9c; // AT_FDCWD as the kernel's int
    let blocklist = build_with(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]}"#,
        Path::new("p.json"),
        &[],
        &suid_only(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .1;
    let eperm = errno_ret(libc::EPERM);
    for (name, prog) in [
        ("default", builtin_prog("default", &[], &suid_only())),
        ("strict", builtin_prog("strict", &[], &suid_only())),
        ("blocklist", blocklist),
    ] {
        let r = |nr: i64, args: &[u64]| run(&prog, &call(nr, args));
        assert_eq!(r(libc::SYS_chmod, &[0, 0o4755]), eperm, "{name}");
        assert_eq!(r(libc::SYS_fchmod, &[3, 0o2711]), eperm, "{name}");
        assert_eq!(r(libc::SYS_fchmodat, &[at, 0, 0o6755]), eperm, "{name}");
        assert_eq!(r(libc::SYS_creat, &[0, 0o4755]), eperm, "{name}");
        assert_eq!(
            r(libc::SYS_mknodat, &[at, 0, 0o104_755, 0]),
            eperm,
            "{name}"
        );
        assert_eq!(
            r(libc::SYS_openat, &[at, 0, creat, 0o4755]),
            eperm,
            "{name}"
        );
        assert_eq!(
            r(libc::SYS_openat, &[at, 0, tmpfile, 0o2755]),
            eperm,
            "{name}"
        );
        assert_eq!(r(libc::SYS_open, &[0, creat, 0o4755]), eperm, "{name}");
        // The high word of a mode is not read by the kernel, nor here.
        assert_eq!(r(libc::SYS_chmod, &[0, 0x1_0000_4755]), eperm, "{name}");
        assert_eq!(
            r(libc::SYS_openat2, &[at, 0, 0, 24]),
            errno_ret(libc::ENOSYS),
            "{name}"
        );
        // What the wall leaves: a mode without the bits, or no file made.
        assert_eq!(
            r(libc::SYS_openat, &[at, 0, rdonly, 0o4755]),
            ALLOW,
            "{name}"
        );
        assert_eq!(r(libc::SYS_openat, &[at, 0, creat, 0o644]), ALLOW, "{name}");
        assert_eq!(r(libc::SYS_open, &[0, rdonly, 0o6777]), ALLOW, "{name}");
        if name != "strict" {
            // strict allows no chmod at all.
            assert_eq!(r(libc::SYS_chmod, &[0, 0o1777]), ALLOW, "{name}");
            assert_eq!(r(libc::SYS_fchmod, &[3, 0o755]), ALLOW, "{name}");
            assert_eq!(r(libc::SYS_creat, &[0, 0o600]), ALLOW, "{name}");
        }
    }
}

#[test]
fn the_setuid_wall_holds_in_a_child() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| {
        let mut b = dir.path().join(n).as_os_str().as_bytes().to_vec();
        b.push(0);
        b
    };
    let mode_of = |n: &str| {
        std::fs::metadata(dir.path().join(n))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    };
    let file = path("f");
    std::fs::write(dir.path().join("f"), b"#!/bin/sh\n").unwrap();
    let fp = file.as_ptr() as libc::c_long;
    let chmod = |mode: libc::c_long| move || raw(libc::SYS_chmod, &[fp, mode]);
    let none = builtin_prog("default", &[], &Extra::default());
    let walled = builtin_prog("default", &[], &suid_only());
    // Without the wall the default profile lets a service make a setuid
    // file of its own (the attack); with it, EPERM and the mode stays.
    assert_eq!(in_child(&none, chmod(0o4755)), 0);
    assert_eq!(mode_of("f"), 0o4755);
    assert_eq!(in_child(&walled, chmod(0o644)), 0);
    assert_eq!(in_child(&walled, chmod(0o4755)), libc::EPERM);
    assert_eq!(in_child(&walled, chmod(0o2755)), libc::EPERM);
    assert_eq!(mode_of("f"), 0o644);
    assert_eq!(in_child(&walled, chmod(0o755)), 0);
    assert_eq!(mode_of("f"), 0o755);
    // creat and openat with a setuid mode make no file.
    let made = path("made");
    let mp = made.as_ptr() as libc::c_long;
    assert_eq!(
        in_child(&walled, move || raw(libc::SYS_creat, &[mp, 0o4755])),
        libc::EPERM
    );
    let flags = libc::c_long::from(libc::O_CREAT | libc::O_WRONLY);
    let at = libc::c_long::from(libc::AT_FDCWD);
    assert_eq!(
        in_child(&walled, move || raw(
            libc::SYS_openat,
            &[at, mp, flags, 0o6755]
        )),
        libc::EPERM
    );
    assert!(!dir.path().join("made").exists());
    assert_eq!(
        in_child(&walled, move || raw(
            libc::SYS_openat,
            &[at, mp, flags, 0o600]
        )),
        0
    );
    assert_eq!(mode_of("made"), 0o600);
    // openat2 says ENOSYS (the C library falls back to openat); fchmodat2
    // is refused by the wall, or by ENOSYS where libseccomp is older.
    let how = [0u64; 3];
    let hp = how.as_ptr() as libc::c_long;
    assert_eq!(
        in_child(&walled, move || raw(libc::SYS_openat2, &[at, fp, hp, 24])),
        libc::ENOSYS
    );
    let fchmodat2 = move || raw(452, &[at, fp, 0o4755, 0]);
    let e = in_child(&walled, fchmodat2);
    assert!(e == libc::EPERM || e == libc::ENOSYS, "fchmodat2: {e}");
    assert_eq!(mode_of("f"), 0o755);
}

// ------------------------------------------------------------ the init's own

#[cfg(target_arch = "x86_64")]
#[test]
fn the_inits_filter_allows_its_loop_and_log_and_nothing_else() {
    let prog = super::own::init_program().unwrap();
    let eperm = errno_ret(libc::EPERM);
    let append =
        (libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC | libc::O_TRUNC)
            .unsigned_abs();
    for (what, nr, args, want) in [
        ("wait4", libc::SYS_wait4, vec![], ALLOW),
        ("kill", libc::SYS_kill, vec![2, 15], ALLOW),
        ("ppoll", libc::SYS_ppoll, vec![], ALLOW),
        (
            "the log's reopen",
            libc::SYS_openat,
            vec![3, 0, u64::from(append), 0o640],
            ALLOW,
        ),
        (
            "a read-only open",
            libc::SYS_openat,
            vec![3, 0, 0, 0],
            eperm,
        ),
        (
            "a read-write open",
            libc::SYS_openat,
            vec![3, 0, 2 | 0x400, 0],
            eperm,
        ),
        (
            "a write open without append",
            libc::SYS_openat,
            vec![3, 0, 1 | 0x40, 0],
            eperm,
        ),
        ("FIONBIO", libc::SYS_ioctl, vec![3, 0x5421], ALLOW),
        ("TIOCSTI", libc::SYS_ioctl, vec![0, 0x5412], eperm),
        ("execve", libc::SYS_execve, vec![], eperm),
        ("ptrace", libc::SYS_ptrace, vec![], eperm),
        ("socket", libc::SYS_socket, vec![2, 1, 0], eperm),
        ("clone", libc::SYS_clone, vec![], eperm),
        ("mount", libc::SYS_mount, vec![], eperm),
        ("the old open", libc::SYS_open, vec![0, 0], eperm),
    ] {
        assert_eq!(run(prog, &call(nr, &args)), want, "{what}");
    }
    // Another ABI's call is not taken for this one's.
    let x32 = call(libc::SYS_wait4 | 0x4000_0000, &[]);
    assert_ne!(run(prog, &x32), ALLOW);
}

/// The kernel's word on the init's filter: in a child under it, the log's
/// reopen (write-only, append) succeeds and a read-only open is refused.
#[test]
fn the_kernel_refuses_the_init_a_read_only_open_and_lets_it_append() {
    let prog = super::own::init_program().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = std::ffi::CString::new(dir.path().join("svc.log").to_str().unwrap()).unwrap();
    let passwd = c"/etc/passwd";
    let append = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    // openat on a NUL-terminated path that outlives the call; the
    // descriptor is left to the child's _exit.
    let open = |path: &std::ffi::CStr, flags: libc::c_int| {
        let at = libc::c_long::from(libc::AT_FDCWD);
        raw(
            libc::SYS_openat,
            &[at, path.as_ptr() as libc::c_long, flags.into(), 0o640],
        )
    };
    let reopen = in_child(prog, || open(&log, append));
    assert_eq!(reopen, 0, "the log's reopen was refused");
    let read = in_child(prog, || open(passwd, libc::O_RDONLY));
    assert_eq!(
        read,
        libc::EPERM,
        "a read-only open under the init's filter"
    );
    // And without the filter, the same open works: the refusal is its.
    let unfiltered = in_child(&[], || open(passwd, libc::O_RDONLY));
    assert_eq!(unfiltered, 0);
}
