//! A pod's volumes for its device: emptyDir and hostPath as they are,
//! ConfigMap, Secret, downwardAPI and projected volumes as the files they
//! hold (Secret files travel as a [`wire::VolumeSource::Secret`], which the
//! agent keeps on tmpfs only).

use flotilla_shared::model::{self, KeyToPath};
use flotilla_shared::wire;

use super::{Context, DEFAULT_FILE_MODE, Kind, Referenced, Unresolved, parse};

pub(super) fn volume<R: Referenced>(
    context: &Context<'_, R>,
    v: &model::Volume,
) -> Result<wire::Volume, Unresolved> {
    let fail = |message: &dyn std::fmt::Display| Unresolved::mount(&v.name, message);
    let source = if let Some(dir) = &v.empty_dir {
        wire::VolumeSource::EmptyDir {
            medium: match dir.medium.as_str() {
                "" => wire::StorageMedium::Default,
                "Memory" => wire::StorageMedium::Memory,
                other => {
                    return Err(fail(&format_args!(
                        "emptyDir medium {other:?} is not supported on devices"
                    )));
                }
            },
            size_limit_bytes: dir
                .size_limit
                .as_ref()
                .map(|q| parse(q).map(|a| u64::try_from(a.units_ceil().max(0)).unwrap_or(0)))
                .transpose()
                .map_err(|e| fail(&e))?,
        }
    } else if let Some(host) = &v.host_path {
        use wire::HostPathKind as K;
        wire::VolumeSource::HostPath {
            path: host.path.clone(),
            kind: match host.type_.as_deref().unwrap_or_default() {
                "" => K::Unchecked,
                "DirectoryOrCreate" => K::DirectoryOrCreate,
                "Directory" => K::Directory,
                "FileOrCreate" => K::FileOrCreate,
                "File" => K::File,
                "Socket" => K::Socket,
                "CharDevice" => K::CharDevice,
                "BlockDevice" => K::BlockDevice,
                other => return Err(fail(&format_args!("unknown hostPath type {other:?}"))),
            },
        }
    } else if let Some(cm) = &v.config_map {
        let mut files = Vec::new();
        object_files(
            context,
            Kind::ConfigMap,
            &cm.name,
            &cm.items,
            cm.optional,
            &mut files,
        )
        .map_err(|e| fail(&e))?;
        wire::VolumeSource::ConfigMap(file_set(cm.default_mode, files))
    } else if let Some(secret) = &v.secret {
        let mut files = Vec::new();
        object_files(
            context,
            Kind::Secret,
            &secret.secret_name,
            &secret.items,
            secret.optional,
            &mut files,
        )
        .map_err(|e| fail(&e))?;
        wire::VolumeSource::Secret(file_set(secret.default_mode, files))
    } else if let Some(downward) = &v.downward_api {
        let files = downward_files(context, &downward.items).map_err(|e| fail(&e))?;
        wire::VolumeSource::ConfigMap(file_set(downward.default_mode, files))
    } else if let Some(projected) = &v.projected {
        let mut files = Vec::new();
        let mut secret = false;
        for source in &projected.sources {
            if let Some(cm) = &source.config_map {
                object_files(context, Kind::ConfigMap, &cm.name, &cm.items, cm.optional, &mut files)
            } else if let Some(s) = &source.secret {
                secret = true;
                object_files(context, Kind::Secret, &s.name, &s.items, s.optional, &mut files)
            } else if let Some(downward) = &source.downward_api {
                downward_files(context, &downward.items).map(|more| files.extend(more))
            } else if source.service_account_token.is_some() {
                Err("serviceAccountToken projections are not supported on devices (pods there get no API credentials)".into())
            } else {
                Err("this projected volume source is not supported on devices".into())
            }
            .map_err(|e| fail(&e))?;
        }
        let set = file_set(projected.default_mode, files);
        // One Secret among the sources puts the whole volume on tmpfs.
        if secret {
            wire::VolumeSource::Secret(set)
        } else {
            wire::VolumeSource::ConfigMap(set)
        }
    } else if v.persistent_volume_claim.is_some() {
        return Err(fail(
            &"persistentVolumeClaim volumes are not supported on devices (use hostPath or emptyDir)",
        ));
    } else {
        // A volume with no source is an emptyDir (the API server defaults it).
        wire::VolumeSource::EmptyDir {
            medium: wire::StorageMedium::Default,
            size_limit_bytes: None,
        }
    };
    Ok(wire::Volume {
        name: v.name.clone(),
        source,
    })
}

fn file_set(default_mode: Option<i32>, files: Vec<wire::ProjectedFile>) -> wire::FileSet {
    wire::FileSet {
        default_mode: default_mode
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(DEFAULT_FILE_MODE),
        files,
    }
}

/// The files of a set of keys: all of them by key name when `items` is
/// empty, else the listed ones at their paths.
fn key_files(
    kind: &str,
    namespace: &str,
    name: &str,
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    optional: bool,
    files: &mut Vec<wire::ProjectedFile>,
) -> Result<(), String> {
    if items.is_empty() {
        files.extend(data.iter().map(|(key, bytes)| wire::ProjectedFile {
            path: key.clone(),
            mode: None,
            data: bytes.clone(),
        }));
        return Ok(());
    }
    for item in items {
        match data.get(&item.key) {
            Some(bytes) => files.push(wire::ProjectedFile {
                path: item.path.clone(),
                mode: item.mode.and_then(|m| u32::try_from(m).ok()),
                data: bytes.clone(),
            }),
            None if optional => {}
            None => {
                return Err(format!(
                    "{kind} {namespace}/{name} has no key {:?}",
                    item.key
                ));
            }
        }
    }
    Ok(())
}

fn object_files<R: Referenced>(
    context: &Context<'_, R>,
    kind: Kind,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    files: &mut Vec<wire::ProjectedFile>,
) -> Result<(), String> {
    let namespace = &context.pod.metadata.namespace;
    let optional = optional == Some(true);
    match context.object_data(kind, name) {
        Some(data) => key_files(kind.label(), namespace, name, &data, items, optional, files),
        None if optional => Ok(()),
        None => Err(format!("{} {name:?} not found", kind.label())),
    }
}

/// downwardAPI items as files, each answered as an environment variable
/// would be.
fn downward_files<R: Referenced>(
    context: &Context<'_, R>,
    items: &[model::DownwardApiVolumeFile],
) -> Result<Vec<wire::ProjectedFile>, String> {
    items
        .iter()
        .map(|item| {
            let value = if let Some(field) = &item.field_ref {
                context.field(field)?
            } else if let Some(resource) = &item.resource_field_ref {
                let first = context
                    .pod
                    .spec
                    .all_containers()
                    .next()
                    .ok_or("the pod has no containers")?;
                context.resource(first, resource)?
            } else {
                return Err(format!("downwardAPI item {:?} names no field", item.path));
            };
            Ok(wire::ProjectedFile {
                path: item.path.clone(),
                mode: item.mode.and_then(|m| u32::try_from(m).ok()),
                data: value.into_bytes(),
            })
        })
        .collect()
}
