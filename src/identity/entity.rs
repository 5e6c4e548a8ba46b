//! An entity and its aliases, with Vault's read shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::token::rfc3339;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityAlias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub mount_path: String,
    pub mount_type: String,
    pub name: String,
    pub creation_time: i64,
    pub last_update_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub aliases: Vec<EntityAlias>,
    pub policies: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub disabled: bool,
    pub creation_time: i64,
    pub last_update_time: i64,
}

impl EntityAlias {
    fn to_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("canonical_id".into(), self.canonical_id.clone().into());
        data.insert("creation_time".into(), rfc3339(self.creation_time).into());
        data.insert("custom_metadata".into(), Value::Null);
        data.insert("id".into(), self.id.clone().into());
        data.insert(
            "last_update_time".into(),
            rfc3339(self.last_update_time).into(),
        );
        data.insert("local".into(), false.into());
        data.insert("merged_from_canonical_ids".into(), Value::Null);
        data.insert("metadata".into(), Value::Null);
        data.insert("mount_accessor".into(), self.mount_accessor.clone().into());
        data.insert("mount_path".into(), self.mount_path.clone().into());
        data.insert("mount_type".into(), self.mount_type.clone().into());
        data.insert("name".into(), self.name.clone().into());
        data
    }
}

impl Entity {
    /// The `data` of `identity/entity/id/:id`.
    pub fn to_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert(
            "aliases".into(),
            Value::Array(
                self.aliases
                    .iter()
                    .map(|alias| Value::Object(alias.to_data()))
                    .collect(),
            ),
        );
        data.insert("creation_time".into(), rfc3339(self.creation_time).into());
        data.insert("direct_group_ids".into(), Value::Array(Vec::new()));
        data.insert("disabled".into(), self.disabled.into());
        data.insert("group_ids".into(), Value::Array(Vec::new()));
        data.insert("id".into(), self.id.clone().into());
        data.insert("inherited_group_ids".into(), Value::Array(Vec::new()));
        data.insert(
            "last_update_time".into(),
            rfc3339(self.last_update_time).into(),
        );
        data.insert("merged_entity_ids".into(), Value::Null);
        data.insert(
            "metadata".into(),
            if self.metadata.is_empty() {
                Value::Null
            } else {
                Value::Object(
                    self.metadata
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::from(value.clone())))
                        .collect(),
                )
            },
        );
        data.insert("mfa_secrets".into(), Value::Object(Map::new()));
        data.insert("name".into(), self.name.clone().into());
        data.insert("namespace_id".into(), "root".into());
        data.insert("policies".into(), self.policies.clone().into());
        data
    }
}
