//! The walls a service's compartment is built with, as written in the
//! file: `protect` and `directories`. Checks the values and their
//! combinations; it must not touch the host (the walls are built by
//! `sandbox`, and `bulkhead security` assesses them).

use serde_saphyr::Spanned;

use super::{Checker, list, p, p_list, v};
use crate::config::host::{Host, PathKind};
use crate::config::model::*;
use crate::config::node::spanned_pos;
use crate::config::schema::*;
use crate::config::shape::closest;
use crate::error::{Code, Pos};

/// What `compartment` builds: the service's namespaces and walls.
pub(super) struct Compartment {
    pub namespaces: Namespaces,
    pub hostname: Option<String>,
    pub mounts: Mounts,
    pub protect: Protect,
    pub directories: Directories,
}

/// `namespaces`, `protect`, `directories`, `hostname` and `mounts`, and
/// what each needs of the others (a hostname its uts namespace, mounts a
/// mount namespace, directories a single instance).
pub(super) fn compartment(c: &mut Checker, name: &str, pos: Pos, s: &RawService) -> Compartment {
    let at = |field: &str| format!("services.{name}.{field}");
    let ns = s.namespaces.clone().unwrap_or_default();
    let namespaces = Namespaces {
        pid: v(&ns.pid).unwrap_or(true),
        mount: v(&ns.mount).unwrap_or(true),
        net: v(&ns.net).unwrap_or(false)
            || s.protect.as_ref().and_then(|p| v(&p.network)) == Some(Network::Private),
        uts: v(&ns.uts).unwrap_or(true),
        ipc: v(&ns.ipc).unwrap_or(true),
    };
    let protect = protect(
        c,
        name,
        &s.protect.clone().unwrap_or_default(),
        namespaces.mount,
    );
    let directories = directories(c, name, &s.directories.clone().unwrap_or_default());
    if !directories.is_empty() && (v(&s.instances).unwrap_or(1) > 1 || s.isolation.is_some()) {
        // Each instance has a dynamic user of its own: one directory for
        // several would change hands at every start.
        c.report(
            Code::ConfigConflict,
            s.directories
                .as_ref()
                .and_then(|d| {
                    [&d.state, &d.runtime, &d.cache, &d.logs]
                        .into_iter()
                        .flatten()
                        .flat_map(|l| l.first())
                        .map(spanned_pos)
                        .next()
                })
                .unwrap_or(pos),
            format!(
                "{}: a service with several instances (instances, isolation) cannot share one set of directories",
                at("directories")
            ),
            "give the instances a `user:` and `mounts: { read_write: [...] }`, or keep directories to single-instance services",
        );
    }
    let hostname = v(&s.hostname);
    if let Some(h) = &hostname {
        if !namespaces.uts {
            c.report(
                Code::ConfigConflict,
                p(&s.hostname),
                format!("{}: a hostname needs its own uts namespace", at("hostname")),
                "add `namespaces: { uts: true }`",
            );
        }
        if h.is_empty()
            || h.len() > 64
            || !h
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
        {
            c.report(
                Code::ConfigInvalidValue,
                p(&s.hostname),
                format!("{}: {h:?} is not a hostname", at("hostname")),
                "use 1-64 letters, digits, '-' and '.'",
            );
        }
    }
    let m = s.mounts.clone().unwrap_or_default();
    let mounts = Mounts {
        read_only: list(&m.read_only).into_iter().map(|a| a.0).collect(),
        read_write: list(&m.read_write).into_iter().map(|a| a.0).collect(),
        tmpfs: list(&m.tmpfs).into_iter().map(|a| a.0).collect(),
        inaccessible: list(&m.inaccessible).into_iter().map(|a| a.0).collect(),
    };
    let any_mounts = !(mounts.read_only.is_empty()
        && mounts.read_write.is_empty()
        && mounts.tmpfs.is_empty()
        && mounts.inaccessible.is_empty());
    if any_mounts && !namespaces.mount {
        c.report(
            Code::ConfigConflict,
            pos,
            format!(
                "{}: mount changes need the service's own mount namespace",
                at("mounts")
            ),
            "remove `namespaces: { mount: false }` or the mounts",
        );
    }
    for (kind, paths) in [
        ("read_only", &m.read_only),
        ("read_write", &m.read_write),
        ("inaccessible", &m.inaccessible),
    ] {
        for path in paths.iter().flatten() {
            if c.host.path_kind(&path.value.0) == PathKind::Missing {
                c.report(
                    Code::ConfigPath,
                    spanned_pos(path),
                    format!(
                        "{}: {} does not exist on this host",
                        at(&format!("mounts.{kind}")),
                        path.value.0.display()
                    ),
                    "create it or remove the entry",
                );
            }
        }
    }

    Compartment {
        namespaces,
        hostname,
        mounts,
        protect,
        directories,
    }
}

/// `protect`: every wall up unless relaxed. Without a mount namespace the
/// mount-based walls cannot be built; they are off, and `bulkhead security`
/// says so.
fn protect(c: &mut Checker, name: &str, s: &RawProtect, mount_ns: bool) -> Protect {
    let d = Protect::default();
    let mut device_allow = Vec::new();
    for e in s.device_allow.iter().flatten() {
        match crate::config::units::device_allow_entry(&e.value) {
            Ok(()) => device_allow.push(e.value.clone()),
            Err(why) => c.report(
                Code::ConfigInvalidValue,
                spanned_pos(e),
                format!("services.{name}.protect.device_allow: {why}"),
                "write a device path and its access, e.g. \"/dev/dri/renderD128 rw\", or \"c 10:200 rw\"",
            ),
        }
    }
    let families = match &s.address_families {
        None => d.address_families.clone(),
        Some(list) if list.iter().any(|f| f.value == "any") => {
            if list.len() > 1 {
                c.report(
                    Code::ConfigConflict,
                    p_list(&s.address_families),
                    format!("services.{name}.protect.address_families: `any` with other families"),
                    "write [any] alone, or list the families",
                );
            }
            None
        }
        Some(list) => {
            let mut out = Vec::new();
            for f in list {
                if crate::config::units::address_family(&f.value).is_none() {
                    let known = crate::config::units::ADDRESS_FAMILIES;
                    let best = c.suggest("address family", &f.value, |w| {
                        closest(w, known).map(str::to_string)
                    });
                    c.report(
                        Code::ConfigInvalidValue,
                        spanned_pos(f),
                        format!(
                            "services.{name}.protect.address_families: `{}` is not an address family",
                            f.value
                        ),
                        match best {
                            Some(b) => format!("did you mean `{b}`?"),
                            None => format!("use any of {}, or [any]", known.join(", ")),
                        },
                    );
                } else if !out.contains(&f.value) {
                    out.push(f.value.clone());
                }
            }
            Some(out)
        }
    };
    let mut p = Protect {
        system: v(&s.system).unwrap_or(d.system),
        home: v(&s.home).unwrap_or(d.home),
        tmp: v(&s.tmp).unwrap_or(d.tmp),
        devices: v(&s.devices).unwrap_or(d.devices),
        device_allow,
        kernel: v(&s.kernel).unwrap_or(d.kernel),
        cgroups: v(&s.cgroups).unwrap_or(d.cgroups),
        proc: v(&s.proc).unwrap_or(d.proc),
        network: v(&s.network).unwrap_or(d.network),
        address_families: families,
        realtime: v(&s.realtime).unwrap_or(d.realtime),
        clock: v(&s.clock).unwrap_or(d.clock),
        personality: v(&s.personality).unwrap_or(d.personality),
        suid: v(&s.suid).unwrap_or(d.suid),
    };
    if !mount_ns {
        let off = Protect::off();
        (p.system, p.home, p.tmp, p.devices) = (off.system, off.home, off.tmp, off.devices);
        (p.kernel, p.cgroups, p.proc) = (off.kernel, off.cgroups, off.proc);
    }
    p
}

/// `directories`: plain relative names (`app`, `app/cache`), no `..`.
fn directories(c: &mut Checker, name: &str, s: &RawDirectories) -> Directories {
    let mut check = |kind: &str, f: &Option<Vec<Spanned<String>>>| -> Vec<String> {
        let mut out = Vec::new();
        for e in f.iter().flatten() {
            let ok = !e.value.is_empty()
                && !e.value.starts_with('/')
                && e.value.len() <= 255
                && e.value
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if ok {
                out.push(e.value.clone());
            } else {
                c.report(
                    Code::ConfigInvalidValue,
                    spanned_pos(e),
                    format!(
                        "services.{name}.directories.{kind}: {:?} is not a relative directory name",
                        e.value
                    ),
                    "write a name relative to the base directory, e.g. `myapp` for /var/lib/myapp",
                );
            }
        }
        out
    };
    Directories {
        state: check("state", &s.state),
        runtime: check("runtime", &s.runtime),
        cache: check("cache", &s.cache),
        logs: check("logs", &s.logs),
    }
}
