//! ACLs: CreateAcls, DescribeAcls and DeleteAcls (any broker answers; the ACLs are the
//! cluster's). Kafka's model: a resource pattern (type, name, LITERAL or PREFIXED) and an entry
//! (principal, host, operation, ALLOW or DENY); filters use ANY (and MATCH for patterns).

use std::fmt;
use std::str::FromStr;

use rill_protocol::StrBytes;
use rill_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use rill_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use rill_protocol::kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
};

use super::{Admin, check};
use crate::error::Result;

/// Declares a Kafka enum of i8 codes with its upper-snake names (parsed case-insensitively,
/// `-` read as `_`).
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )*
        }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The value of a wire code Kafka defines here.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's name, e.g. `DESCRIBE_CONFIGS`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let wanted = s.trim().replace('-', "_").to_ascii_uppercase();
                match wanted.as_str() {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(format!(
                        "'{s}' is not one of {}",
                        [$($text),*].join(", ").to_ascii_lowercase()
                    )),
                }
            }
        }
    };
}

kafka_enum! {
    /// What an ACL protects.
    AclResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
    }
}

kafka_enum! {
    /// How an ACL's name matches; ANY and MATCH only in filters (MATCH: every ACL that applies
    /// to the name, wildcard and prefixes included).
    AclPatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// An operation; ANY only in filters.
    AclOperation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
    }
}

kafka_enum! {
    /// ALLOW or DENY; ANY only in filters.
    AclPermission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: AclResourceType,
    /// The resource's name (`*` with LITERAL: every resource of the type; the cluster is
    /// `kafka-cluster`).
    pub name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: AclPatternType,
    /// `User:name`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermission,
}

/// Selects ACLs: `None` and the `Any` values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    /// The resource type, or `Any`.
    pub resource_type: AclResourceType,
    /// The exact name (or, with MATCH, a name the ACLs apply to).
    pub name: Option<String>,
    /// LITERAL, PREFIXED, ANY (any pattern, exact name) or MATCH.
    pub pattern_type: AclPatternType,
    /// The exact principal.
    pub principal: Option<String>,
    /// The exact host.
    pub host: Option<String>,
    /// The operation, or `Any`.
    pub operation: AclOperation,
    /// The permission, or `Any`.
    pub permission: AclPermission,
}

impl AclBindingFilter {
    /// A filter that matches every ACL.
    pub fn any() -> Self {
        Self {
            resource_type: AclResourceType::Any,
            name: None,
            pattern_type: AclPatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// An ACL from the wire's codes; unknown codes show as `Any`.
fn binding(
    resource_type: i8,
    name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> AclBinding {
    AclBinding {
        resource_type: AclResourceType::from_code(resource_type).unwrap_or(AclResourceType::Any),
        name: name.to_owned(),
        pattern_type: AclPatternType::from_code(pattern_type).unwrap_or(AclPatternType::Any),
        principal: principal.to_owned(),
        host: host.to_owned(),
        operation: AclOperation::from_code(operation).unwrap_or(AclOperation::Any),
        permission: AclPermission::from_code(permission).unwrap_or(AclPermission::Any),
    }
}

impl Admin {
    /// Creates ACLs: one result per ACL, in order (a bad one is INVALID_REQUEST; without
    /// ALTER on the cluster, CLUSTER_AUTHORIZATION_FAILED).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::{AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType};
    /// let acl = AclBinding {
    ///     resource_type: AclResourceType::Topic,
    ///     name: "orders".into(),
    ///     pattern_type: AclPatternType::Literal,
    ///     principal: "User:alice".into(),
    ///     host: "*".into(),
    ///     operation: AclOperation::Read,
    ///     permission: AclPermission::Allow,
    /// };
    /// for result in admin.create_acls(&[acl]).await? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<Vec<Result<()>>> {
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type.code())
                    .with_resource_name(text(&a.name))
                    .with_resource_pattern_type(a.pattern_type.code())
                    .with_principal(text(&a.principal))
                    .with_host(text(&a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code())
            })
            .collect();
        let request = CreateAclsRequest::default().with_creations(creations);
        let response = self.any().await?.request(request).await?;
        Ok(acls
            .iter()
            .enumerate()
            .map(|(i, acl)| {
                let Some(result) = response.results.get(i) else {
                    return Err(super::missing(
                        rill_protocol::ApiKey::CreateAcls,
                        &format!("ACL {i}"),
                    ));
                };
                check(result.error_code, result.error_message.as_ref(), || {
                    format!(
                        "create ACL {} {} on {} {} ({})",
                        acl.permission, acl.operation, acl.resource_type, acl.name, acl.principal
                    )
                })
            })
            .collect())
    }

    /// Every ACL `filter` selects, in the broker's order (by resource, then entry).
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// for acl in admin.describe_acls(&rill_client::AclBindingFilter::any()).await? {
    ///     println!("{} {} {}", acl.principal, acl.operation, acl.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.name.as_deref().map(text))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(text))
            .with_host_filter(filter.host.as_deref().map(text))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let response = self
            .retrying(|| async { self.any().await?.request(request.clone()).await })
            .await?;
        check(response.error_code, response.error_message.as_ref(), || {
            "describe ACLs".to_owned()
        })?;
        Ok(response
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    binding(
                        r.resource_type,
                        &r.resource_name,
                        r.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect())
    }

    /// Deletes every ACL each filter selects: per filter, in order, the ACLs it removed.
    ///
    /// ```no_run
    /// # async fn _demo(admin: &rill_client::Admin) -> Result<(), rill_client::ClientError> {
    /// let mut filter = rill_client::AclBindingFilter::any();
    /// filter.principal = Some("User:alice".into());
    /// for removed in admin.delete_acls(&[filter]).await? {
    ///     println!("{} removed", removed?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_acls(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>>>> {
        let wire = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type.code())
                    .with_resource_name_filter(f.name.as_deref().map(text))
                    .with_pattern_type_filter(f.pattern_type.code())
                    .with_principal_filter(f.principal.as_deref().map(text))
                    .with_host_filter(f.host.as_deref().map(text))
                    .with_operation(f.operation.code())
                    .with_permission_type(f.permission.code())
            })
            .collect();
        let request = DeleteAclsRequest::default().with_filters(wire);
        let response = self.any().await?.request(request).await?;
        Ok((0..filters.len())
            .map(|i| {
                let Some(result) = response.filter_results.get(i) else {
                    return Err(super::missing(
                        rill_protocol::ApiKey::DeleteAcls,
                        &format!("filter {i}"),
                    ));
                };
                check(result.error_code, result.error_message.as_ref(), || {
                    format!("delete ACLs (filter {i})")
                })?;
                Ok(result
                    .matching_acls
                    .iter()
                    .map(|a| {
                        binding(
                            a.resource_type,
                            &a.resource_name,
                            a.pattern_type,
                            &a.principal,
                            &a.host,
                            a.operation,
                            a.permission_type,
                        )
                    })
                    .collect())
            })
            .collect())
    }
}
