//! `security:` of a service: capabilities by name, no_new_privs, and the
//! seccomp profile (built-in, or a file that must compile for the service's
//! capabilities). Each profile file is read and compiled once per set of
//! capabilities; this module must not install anything (`sandbox` does).

use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use super::{Checker, p, v};
use crate::config::host::{Host, PathKind};
use crate::config::model::*;
use crate::config::node::spanned_pos;
use crate::config::schema::*;
use crate::config::shape::closest;
use crate::error::{Code, Diagnostic, Pos};

pub use crate::seccomp::canonical_capability;

/// The capability a misspelt name most likely means. The shared `CAP_`
/// prefix is left out of the comparison (it would make every name look
/// close), and a unique name the word begins (`CAP_NET_BIND` ->
/// `CAP_NET_BIND_SERVICE`) counts as a match.
fn closest_capability(canon: &str) -> Option<String> {
    let all: Vec<String> = caps::all().iter().map(ToString::to_string).collect();
    let bare: Vec<&str> = all
        .iter()
        .map(|n| n.strip_prefix("CAP_").unwrap_or(n))
        .collect();
    let word = canon.strip_prefix("CAP_").unwrap_or(canon);
    if let Some(b) = closest(word, &bare) {
        return Some(format!("CAP_{b}"));
    }
    let mut starting = bare
        .iter()
        .filter(|n| word.len() >= 3 && n.starts_with(word));
    match (starting.next(), starting.next()) {
        (Some(b), None) => Some(format!("CAP_{b}")),
        _ => None,
    }
}

pub(super) fn security(c: &mut Checker, name: &str, s: &RawSecurity) -> Security {
    let mut capabilities = Vec::new();
    let mut seen = HashSet::new();
    for cap in s.capabilities.iter().flatten() {
        let canon = canonical_capability(&cap.value);
        if canon.parse::<caps::Capability>().is_ok() {
            if seen.insert(canon.clone()) {
                capabilities.push(canon);
            }
        } else {
            let best = c.suggest("capability", &canon, closest_capability);
            c.report(
                Code::ConfigUnknownCapability,
                spanned_pos(cap),
                format!(
                    "services.{name}.security.capabilities: `{}` is not a capability",
                    cap.value
                ),
                match best {
                    Some(b) => format!("did you mean `{b}`?"),
                    None => {
                        "see capabilities(7) for the names, e.g. CAP_NET_BIND_SERVICE".to_string()
                    }
                },
            );
        }
    }
    let no_new_privs = v(&s.no_new_privs).unwrap_or(true);
    let seccomp = match v(&s.seccomp).as_deref() {
        None | Some("default") => Seccomp::Builtin("default".into()),
        Some("unconfined") => Seccomp::Unconfined,
        Some(b) if BUILTIN_PROFILES.contains(&b) => Seccomp::Builtin(b.to_string()),
        Some(other) if !other.contains('/') && !other.ends_with(".json") => {
            let mut names: Vec<&str> = BUILTIN_PROFILES.to_vec();
            names.push("unconfined");
            c.report(
                Code::ConfigSeccompProfile,
                p(&s.seccomp),
                format!("services.{name}.security.seccomp: no built-in profile named `{other}`"),
                match closest(other, &names) {
                    Some(b) => {
                        format!("did you mean `{b}`? A file needs a path, e.g. ./{other}.json")
                    }
                    None => format!(
                        "use {} or a path to an OCI/Docker JSON profile",
                        names.join(", ")
                    ),
                },
            );
            Seccomp::Unconfined
        }
        Some(path) => {
            let full = c.base_dir().join(path.strip_prefix("./").unwrap_or(path));
            seccomp_file(c, p(&s.seccomp), name, &full, &capabilities);
            Seccomp::File(full)
        }
    };
    if !no_new_privs
        && seccomp != Seccomp::Unconfined
        && !capabilities.iter().any(|c| c == "CAP_SYS_ADMIN")
    {
        c.report(
            Code::ConfigConflict,
            p(&s.no_new_privs),
            format!("services.{name}.security: a seccomp filter needs no_new_privs (or CAP_SYS_ADMIN), or the kernel refuses it"),
            "keep `no_new_privs: true` (the default), or use `seccomp: unconfined`",
        );
    }
    Security {
        capabilities,
        no_new_privs,
        seccomp,
    }
}

/// A profile file must exist and be a valid OCI/Docker profile that
/// compiles for this service's capabilities on this host. The profile's own
/// location (file:line:column) goes into the context: the diagnostic points
/// at the `seccomp` key of the config file.
fn seccomp_file(c: &mut Checker, pos: Pos, name: &str, path: &Path, caps: &[String]) {
    let key = (path.to_path_buf(), caps.to_vec());
    let found = match c.profiles.get(&key) {
        Some(found) => Rc::clone(found),
        None => {
            let found = Rc::new(profile_problems(&c.host, path, caps));
            c.profiles.insert(key, Rc::clone(&found));
            found
        }
    };
    let field = format!("services.{name}.security.seccomp");
    for d in found.iter() {
        let mut out = d.clone().at(c.file, pos);
        out.message = format!("{field}: {}", d.message);
        c.push(out);
    }
}

/// What is wrong with a seccomp profile file for these capabilities, as
/// diagnostics without a location (the caller points at its `seccomp` key).
fn profile_problems(host: &dyn Host, path: &Path, caps: &[String]) -> Vec<Diagnostic> {
    if !matches!(
        host.path_kind(path),
        PathKind::File { .. } | PathKind::Missing
    ) {
        return vec![
            Diagnostic::new(
                Code::ConfigSeccompProfile,
                format!("{} is not a regular file", path.display()),
            )
            .suggest("name a JSON file holding an OCI/Docker seccomp profile"),
        ];
    }
    let text = match host.read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![
                Diagnostic::new(
                    Code::ConfigSeccompProfile,
                    format!("cannot read {}", path.display()),
                )
                .cause(e)
                .suggest("relative paths are read from the config file's directory"),
            ];
        }
    };
    let Err(found) = crate::seccomp::build_for(&text, path, caps, host.seccomp_target()) else {
        return Vec::new();
    };
    found
        .0
        .into_iter()
        .map(|d| {
            let location = match (&d.file, d.pos) {
                (Some(f), Some(p)) => format!("{}:{}:{}", f.display(), p.line, p.column),
                (Some(f), None) => f.display().to_string(),
                (None, _) => path.display().to_string(),
            };
            let mut out =
                Diagnostic::new(Code::ConfigSeccompProfile, d.message).context("profile", location);
            out.cause = d.cause;
            out.suggestion = d.suggestion;
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_suggestions_ignore_the_prefix() {
        assert_eq!(
            closest_capability("CAP_NET_BIND").as_deref(),
            Some("CAP_NET_BIND_SERVICE")
        );
        assert_eq!(
            closest_capability("CAP_SYS_ADMN").as_deref(),
            Some("CAP_SYS_ADMIN")
        );
        assert_eq!(closest_capability("CAP_NETWORK_EVERYTHING"), None);
        // A prefix of several names is no suggestion.
        assert_eq!(closest_capability("CAP_SYS_"), None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod seccomp_tests {
    use super::*;
    use crate::config::host::fake::FakeHost;
    use crate::error::Diagnostics;

    /// A config whose one service uses the profile `./p.json`, with `caps`.
    fn load(profile: &str, caps: &str) -> Result<crate::config::Config, Diagnostics> {
        let mut h = FakeHost::typical();
        h.files
            .insert("/etc/bulkhead/p.json".into(), profile.into());
        let yaml = format!(
            "services:\n  web:\n    command: [/bin/true]\n    security:\n      capabilities: [{caps}]\n      seccomp: ./p.json\n"
        );
        crate::config::parse_str(&yaml, Path::new("/etc/bulkhead/bulkhead.yaml"), &h)
    }

    #[test]
    fn a_profile_file_is_fully_checked_at_validation() {
        let cfg = load(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            cfg.services[0].security.seccomp,
            Seccomp::File("/etc/bulkhead/p.json".into())
        );
        let e = load(
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALOW\"}]}",
            "",
        )
        .unwrap_err();
        let d = &e.0[0];
        assert_eq!(d.code, Code::ConfigSeccompProfile);
        assert_eq!(
            d.message,
            "services.web.security.seccomp: syscalls[0].action: unknown action `SCMP_ACT_ALOW`"
        );
        // The diagnostic points into the config; the context into the profile.
        assert_eq!(
            d.file.as_deref(),
            Some(Path::new("/etc/bulkhead/bulkhead.yaml"))
        );
        assert_eq!(
            d.context,
            [(
                "profile".to_string(),
                "/etc/bulkhead/p.json:2:35".to_string()
            )]
        );
    }

    #[test]
    fn a_misspelt_system_call_in_a_profile_is_a_validation_error() {
        let e = load(
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [{\"names\": [\"read\", \"keyctll\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
            "",
        )
        .unwrap_err();
        let d = &e.0[0];
        assert!(
            d.message.starts_with(
                "services.web.security.seccomp: syscalls[0].names[1]: `keyctll` is not a system call"
            ),
            "{e}"
        );
        assert_eq!(
            d.context,
            [(
                "profile".to_string(),
                "/etc/bulkhead/p.json:2:34".to_string()
            )]
        );
        assert!(
            d.suggestion
                .as_deref()
                .is_some_and(|s| s.starts_with("did you mean `keyctl`?")),
            "{e}"
        );
        // Set aside when the profile says so.
        assert!(
            load(
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "ignore_unknown": true, "syscalls": [{"names": ["read", "keyctll"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "",
            )
            .is_ok()
        );
    }

    #[test]
    fn profile_checks_use_the_service_capabilities() {
        // Two rules that conflict only when CAP_SYS_ADMIN opens the second.
        let profile = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["mount"], "action": "SCMP_ACT_KILL_PROCESS"},
  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}"#;
        assert!(load(profile, "").is_ok());
        let e = load(profile, "CAP_SYS_ADMIN").unwrap_err();
        assert!(e.0[0].message.contains("`mount` gets ALLOW"), "{e}");
    }
}
