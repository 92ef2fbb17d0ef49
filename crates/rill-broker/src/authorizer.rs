//! ACLs and the authorizer: Kafka's model (resource, pattern, principal, host, operation,
//! permission) and the decision every request passes through.
//!
//! The bindings live in the metadata image ([`crate::quorum::image::Image::acls`]); each time
//! they change the reconciler builds a new [`AclIndex`] and swaps it in, so a reader takes an
//! `Arc` and never waits for a rebuild. A decision is a few hash lookups: one for the literal
//! name, one for the wildcard `*`, and one per prefix of the name among the prefix lengths that
//! PREFIXED bindings use (never a scan of every binding).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use rill_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

/// Kafka's literal name that matches every resource of its type.
pub(crate) const WILDCARD: &str = "*";
/// The principal of a client that proved no identity.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// What an ACL protects (Kafka's `ResourceType`, codes 2-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Group => 3,
            Self::Cluster => 4,
            Self::TransactionalId => 5,
        }
    }

    pub(crate) fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Self::Topic,
            3 => Self::Group,
            4 => Self::Cluster,
            5 => Self::TransactionalId,
            _ => return None,
        })
    }
}

/// How a binding's name matches (Kafka's `PatternType` LITERAL 3 and PREFIXED 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Literal => 3,
            Self::Prefixed => 4,
        }
    }
}

/// Kafka's `AclOperation`, codes 2 (ALL) to 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::All => 2,
            Self::Read => 3,
            Self::Write => 4,
            Self::Create => 5,
            Self::Delete => 6,
            Self::Alter => 7,
            Self::Describe => 8,
            Self::ClusterAction => 9,
            Self::DescribeConfigs => 10,
            Self::AlterConfigs => 11,
            Self::IdempotentWrite => 12,
        }
    }

    pub(crate) fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Self::All,
            3 => Self::Read,
            4 => Self::Write,
            5 => Self::Create,
            6 => Self::Delete,
            7 => Self::Alter,
            8 => Self::Describe,
            9 => Self::ClusterAction,
            10 => Self::DescribeConfigs,
            11 => Self::AlterConfigs,
            12 => Self::IdempotentWrite,
            _ => return None,
        })
    }

    /// Whether an ALLOW of `self` grants `wanted`: ALL grants everything, READ, WRITE, DELETE
    /// and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS (Kafka's implications).
    fn allows(self, wanted: Operation) -> bool {
        self == wanted
            || self == Self::All
            || (wanted == Self::Describe
                && matches!(self, Self::Read | Self::Write | Self::Delete | Self::Alter))
            || (wanted == Self::DescribeConfigs && self == Self::AlterConfigs)
    }

    /// Whether a DENY of `self` refuses `wanted`: only the operation itself or ALL (a DENY of
    /// READ leaves DESCRIBE alone, as in Kafka).
    fn denies(self, wanted: Operation) -> bool {
        self == wanted || self == Self::All
    }
}

/// Kafka's `AclPermissionType`: DENY 2, ALLOW 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Deny => 2,
            Self::Allow => 3,
        }
    }
}

/// One ACL: a resource pattern and an access control entry. Ordered, so the image keeps them
/// in one deterministic order on every broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct AclBinding {
    pub(crate) resource_type: ResourceType,
    pub(crate) name: String,
    pub(crate) pattern: PatternType,
    pub(crate) principal: String,
    pub(crate) host: String,
    pub(crate) operation: Operation,
    pub(crate) permission: Permission,
}

impl AclBinding {
    /// A binding from CreateAcls' codes, or Kafka's error for it (INVALID_REQUEST for an
    /// UNKNOWN/ANY/MATCH code or a bad name, principal or host, as Kafka's CreateAcls answers).
    pub(crate) fn from_codes(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, (ErrorCode, String)> {
        let invalid = |why: String| Err((ErrorCode::InvalidRequest, why));
        let Some(resource_type) = ResourceType::from_code(resource_type) else {
            return invalid(format!("resource type {resource_type} cannot be in an ACL"));
        };
        let pattern = match pattern {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            other => return invalid(format!("pattern type {other} cannot be in an ACL")),
        };
        let Some(operation) = Operation::from_code(operation) else {
            return invalid(format!("operation {operation} cannot be in an ACL"));
        };
        let permission = match permission {
            2 => Permission::Deny,
            3 => Permission::Allow,
            other => return invalid(format!("permission type {other} cannot be in an ACL")),
        };
        if name.is_empty() {
            return invalid("resource name must not be empty".to_owned());
        }
        if resource_type == ResourceType::Cluster && name != "kafka-cluster" {
            return invalid("the cluster resource is named 'kafka-cluster'".to_owned());
        }
        if pattern == PatternType::Prefixed && name == WILDCARD {
            return invalid("a PREFIXED pattern cannot be '*' (use LITERAL '*')".to_owned());
        }
        match principal.split_once(':') {
            Some((kind, who)) if !kind.is_empty() && !who.is_empty() => {}
            _ => return invalid(format!("principal '{principal}' is not Type:name")),
        }
        if host != WILDCARD && host.parse::<std::net::IpAddr>().is_err() {
            return invalid(format!("host '{host}' is not '*' or an IP address"));
        }
        Ok(Self {
            resource_type,
            name: name.to_owned(),
            pattern,
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        })
    }
}

/// How a filter's name and pattern select bindings (Kafka's pattern filter: LITERAL and PREFIXED
/// exactly, ANY any pattern with the exact name, MATCH every binding that would apply to the
/// name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PatternFilter {
    Any,
    Match,
    Literal,
    Prefixed,
}

/// A DescribeAcls or DeleteAcls filter; `None` is Kafka's ANY (or null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AclFilter {
    pub(crate) resource_type: Option<ResourceType>,
    pub(crate) name: Option<String>,
    pub(crate) pattern: PatternFilter,
    pub(crate) principal: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) operation: Option<Operation>,
    pub(crate) permission: Option<Permission>,
}

impl AclFilter {
    /// A filter from Kafka's codes (1 is ANY everywhere), or INVALID_REQUEST for an UNKNOWN
    /// code.
    pub(crate) fn from_codes(
        resource_type: i8,
        name: Option<&str>,
        pattern: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, (ErrorCode, String)> {
        let invalid = |what: &str, code: i8| {
            Err((
                ErrorCode::InvalidRequest,
                format!("{what} {code} is not valid in a filter"),
            ))
        };
        let resource_type = match resource_type {
            1 => None,
            code => match ResourceType::from_code(code) {
                Some(t) => Some(t),
                None => return invalid("resource type", code),
            },
        };
        let pattern = match pattern {
            1 => PatternFilter::Any,
            2 => PatternFilter::Match,
            3 => PatternFilter::Literal,
            4 => PatternFilter::Prefixed,
            code => return invalid("pattern type", code),
        };
        let operation = match operation {
            1 => None,
            code => match Operation::from_code(code) {
                Some(o) => Some(o),
                None => return invalid("operation", code),
            },
        };
        let permission = match permission {
            1 => None,
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            code => return invalid("permission type", code),
        };
        Ok(Self {
            resource_type,
            name: name.map(str::to_owned),
            pattern,
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation,
            permission,
        })
    }

    /// Whether `binding` is one this filter selects.
    pub(crate) fn matches(&self, binding: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if self
            .resource_type
            .is_some_and(|t| t != binding.resource_type)
            || !eq(&self.principal, &binding.principal)
            || !eq(&self.host, &binding.host)
            || self.operation.is_some_and(|o| o != binding.operation)
            || self.permission.is_some_and(|p| p != binding.permission)
        {
            return false;
        }
        let exact = match self.pattern {
            PatternFilter::Literal => Some(PatternType::Literal),
            PatternFilter::Prefixed => Some(PatternType::Prefixed),
            PatternFilter::Any | PatternFilter::Match => None,
        };
        if exact.is_some_and(|p| p != binding.pattern) {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern != PatternFilter::Match {
            return *name == binding.name;
        }
        match binding.pattern {
            PatternType::Literal => *name == binding.name || binding.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&binding.name),
        }
    }
}

/// The part of a binding a decision looks at once its resource matched.
#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    /// `None` for `*`.
    host: Option<IpAddr>,
    operation: Operation,
    permission: Permission,
}

impl Entry {
    fn applies(&self, principal: &str, host: IpAddr) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && self.host.is_none_or(|h| h == host)
    }
}

/// One resource type's bindings, by name.
#[derive(Debug, Default)]
struct Patterns {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// The byte lengths of the PREFIXED names, so a lookup tries only those prefixes.
    prefix_lengths: BTreeSet<usize>,
}

/// The bindings arranged for decisions: immutable, rebuilt whenever the ACLs change.
#[derive(Debug, Default)]
pub(crate) struct AclIndex {
    /// Per resource type, in [`ResourceType`] order, so lookups take a `&str`.
    types: [Patterns; 4],
    /// Principals with an ALLOW of WRITE (or ALL) on some topic: Kafka 3.x lets an idempotent
    /// producer in with WRITE on any topic.
    topic_writers: HashSet<String>,
}

fn slot(resource_type: ResourceType) -> usize {
    match resource_type {
        ResourceType::Topic => 0,
        ResourceType::Group => 1,
        ResourceType::Cluster => 2,
        ResourceType::TransactionalId => 3,
    }
}

impl AclIndex {
    pub(crate) fn build<'a>(bindings: impl IntoIterator<Item = &'a AclBinding>) -> Self {
        let mut index = Self::default();
        for b in bindings {
            let entry = Entry {
                principal: b.principal.clone(),
                host: b.host.parse::<IpAddr>().ok().map(|h| h.to_canonical()),
                operation: b.operation,
                permission: b.permission,
            };
            let Some(patterns) = index.types.get_mut(slot(b.resource_type)) else {
                continue;
            };
            match b.pattern {
                PatternType::Literal => {
                    patterns
                        .literal
                        .entry(b.name.clone())
                        .or_default()
                        .push(entry);
                }
                PatternType::Prefixed => {
                    let _ = patterns.prefix_lengths.insert(b.name.len());
                    patterns
                        .prefixed
                        .entry(b.name.clone())
                        .or_default()
                        .push(entry);
                }
            }
            if b.resource_type == ResourceType::Topic
                && b.permission == Permission::Allow
                && b.operation.allows(Operation::Write)
            {
                let _ = index.topic_writers.insert(b.principal.clone());
            }
        }
        index
    }

    /// Every entry on a resource: its literal name, the wildcard, and the prefixes of the name.
    fn entries<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let patterns = self.types.get(slot(resource_type));
        let literal = patterns
            .and_then(|p| p.literal.get(name))
            .into_iter()
            .flatten();
        let wildcard = patterns
            .filter(|_| name != WILDCARD)
            .and_then(|p| p.literal.get(WILDCARD))
            .into_iter()
            .flatten();
        let prefixed = patterns
            .into_iter()
            .flat_map(move |p| {
                p.prefix_lengths
                    .iter()
                    .take_while(move |len| **len <= name.len())
                    .filter_map(move |len| name.get(..*len))
                    .filter_map(move |prefix| p.prefixed.get(prefix))
            })
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }
}

/// The broker's authorizer settings (Kafka's `authorizer.class.name`, `super.users`,
/// `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// ACLs are enforced (`authorizer.class.name` is not empty).
    pub enabled: bool,
    /// Principals (`User:name`) allowed everything.
    pub super_users: Vec<String>,
    /// A resource with no ACL at all is open to everyone.
    pub allow_everyone_if_no_acl_found: bool,
}

/// The authorizer: its settings and the current index.
#[derive(Debug)]
pub(crate) struct Authorizer {
    enabled: bool,
    super_users: HashSet<String>,
    allow_if_none: bool,
    index: RwLock<Arc<AclIndex>>,
}

impl Authorizer {
    pub(crate) fn new<'a>(
        config: &AuthorizerConfig,
        bindings: impl IntoIterator<Item = &'a AclBinding>,
    ) -> Self {
        Self {
            enabled: config.enabled,
            super_users: config.super_users.iter().cloned().collect(),
            allow_if_none: config.allow_everyone_if_no_acl_found,
            index: RwLock::new(Arc::new(AclIndex::build(bindings))),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Swaps in an index of `bindings`, built before the swap.
    pub(crate) fn rebuild<'a>(&self, bindings: impl IntoIterator<Item = &'a AclBinding>) {
        let index = Arc::new(AclIndex::build(bindings));
        if let Ok(mut current) = self.index.write() {
            *current = index;
        }
    }

    /// What one request's decisions read: the index at this moment, and who asks.
    pub(crate) fn session<'a>(&'a self, principal: Option<&'a str>, host: IpAddr) -> Access<'a> {
        let index = if self.enabled {
            self.index.read().map(|i| Arc::clone(&i)).ok()
        } else {
            None
        };
        let principal = principal.unwrap_or(ANONYMOUS);
        Access {
            authorizer: self,
            index,
            superuser: self.super_users.contains(principal),
            principal,
            host,
        }
    }
}

/// One request's view of the authorizer: who asks, from where, against which index.
#[derive(Debug)]
pub(crate) struct Access<'a> {
    authorizer: &'a Authorizer,
    /// `None` when the authorizer is off.
    index: Option<Arc<AclIndex>>,
    superuser: bool,
    principal: &'a str,
    host: IpAddr,
}

impl Access<'_> {
    /// Whether this principal may do `operation` on the resource.
    pub(crate) fn allowed(&self, operation: Operation, resource: ResourceType, name: &str) -> bool {
        let Some(index) = &self.index else {
            return true;
        };
        if self.superuser {
            return true;
        }
        let mut any = false;
        let mut allowed = false;
        for entry in index.entries(resource, name) {
            any = true;
            if !entry.applies(self.principal, self.host) {
                continue;
            }
            match entry.permission {
                Permission::Deny if entry.operation.denies(operation) => return false,
                Permission::Allow if entry.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any && self.authorizer.allow_if_none)
    }

    /// The cluster resource's decision.
    pub(crate) fn on_cluster(&self, operation: Operation) -> bool {
        self.allowed(operation, ResourceType::Cluster, "kafka-cluster")
    }

    /// Kafka 3.x's rule for an idempotent producer: IDEMPOTENT_WRITE on the cluster, or an
    /// ALLOW of WRITE on some topic.
    pub(crate) fn may_write_idempotently(&self) -> bool {
        if self.on_cluster(Operation::IdempotentWrite) {
            return true;
        }
        self.index.as_ref().is_some_and(|index| {
            index.topic_writers.contains(self.principal) || index.topic_writers.contains("User:*")
        })
    }

    /// Kafka's `authorized_operations` bit set for a resource: each operation this principal
    /// may do among `operations`.
    pub(crate) fn operations(
        &self,
        resource: ResourceType,
        name: &str,
        operations: &[Operation],
    ) -> i32 {
        operations
            .iter()
            .filter(|op| self.allowed(**op, resource, name))
            .fold(0, |set, op| set | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn authorizer(allow_if_none: bool, bindings: &[AclBinding]) -> Authorizer {
        let config = AuthorizerConfig {
            enabled: true,
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: allow_if_none,
        };
        Authorizer::new(&config, bindings)
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn allow_deny_and_implications() {
        let a = authorizer(
            false,
            &[
                acl(Topic, "orders", Literal, "User:alice", Read, Allow),
                acl(Topic, "orders", Literal, "User:bob", All, Allow),
                acl(Topic, "orders", Literal, "User:bob", Write, Deny),
                acl(Topic, "cfg", Literal, "User:alice", AlterConfigs, Allow),
            ],
        );
        let alice = a.session(Some("User:alice"), LOCAL);
        assert!(alice.allowed(Read, Topic, "orders"));
        assert!(
            alice.allowed(Describe, Topic, "orders"),
            "READ implies DESCRIBE"
        );
        assert!(!alice.allowed(Write, Topic, "orders"));
        assert!(alice.allowed(DescribeConfigs, Topic, "cfg"));
        assert!(!alice.allowed(Describe, Topic, "cfg"));
        assert!(!alice.allowed(Read, Topic, "other"), "no ACL, not allowed");
        let bob = a.session(Some("User:bob"), LOCAL);
        assert!(bob.allowed(Read, Topic, "orders"));
        assert!(!bob.allowed(Write, Topic, "orders"), "deny wins");
        let admin = a.session(Some("User:admin"), LOCAL);
        assert!(admin.allowed(Write, Topic, "orders"), "super user");
        let anonymous = a.session(None, LOCAL);
        assert!(!anonymous.allowed(Read, Topic, "orders"));
    }

    #[test]
    fn prefixes_wildcards_hosts_and_no_acl() {
        let mut host_acl = acl(Topic, "h", Literal, "User:alice", Read, Allow);
        host_acl.host = "10.0.0.1".into();
        let bindings = [
            acl(Topic, "eu-", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "eu-secret", Prefixed, "User:*", Write, Deny),
            acl(Group, "*", Literal, "User:*", Read, Allow),
            host_acl,
        ];
        for allow_if_none in [false, true] {
            let a = authorizer(allow_if_none, &bindings);
            let alice = a.session(Some("User:alice"), LOCAL);
            assert!(alice.allowed(Write, Topic, "eu-orders"));
            assert!(alice.allowed(Write, Topic, "eu-"));
            assert_eq!(
                alice.allowed(Write, Topic, "eu"),
                allow_if_none,
                "no prefix matches"
            );
            assert!(!alice.allowed(Write, Topic, "eu-secret-1"));
            assert!(alice.allowed(Read, Group, "any-group"));
            assert!(!alice.allowed(Read, Topic, "h"), "another host");
            let there = a.session(Some("User:alice"), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
            assert!(there.allowed(Read, Topic, "h"));
            // No ACL on the resource at all: allow.everyone.if.no.acl.found decides.
            assert_eq!(alice.allowed(Read, Topic, "us-orders"), allow_if_none);
            assert_eq!(alice.on_cluster(Create), allow_if_none);
            // An ACL for someone else on the resource: not "no ACL".
            assert!(!alice.allowed(Read, Topic, "eu-secret"));
        }
    }

    #[test]
    fn off_allows_everything_and_idempotent_write() {
        let off = Authorizer::new(&AuthorizerConfig::default(), &[]);
        assert!(off.session(None, LOCAL).allowed(Write, Topic, "t"));
        let a = authorizer(false, &[acl(Topic, "t", Literal, "User:w", Write, Allow)]);
        assert!(a.session(Some("User:w"), LOCAL).may_write_idempotently());
        assert!(!a.session(Some("User:r"), LOCAL).may_write_idempotently());
        let ops = a
            .session(Some("User:w"), LOCAL)
            .operations(Topic, "t", &[Read, Write, Describe]);
        assert_eq!(ops, (1 << 4) | (1 << 8));
    }

    #[test]
    fn filters_select_as_kafkas() {
        let lit = acl(Topic, "orders", Literal, "User:a", Read, Allow);
        let wild = acl(Topic, "*", Literal, "User:a", Read, Allow);
        let pre = acl(Topic, "ord", Prefixed, "User:a", Read, Allow);
        let filter = |pattern, name: Option<&str>| AclFilter {
            resource_type: Some(Topic),
            name: name.map(str::to_owned),
            pattern,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        let m = filter(PatternFilter::Match, Some("orders"));
        assert!(m.matches(&lit) && m.matches(&wild) && m.matches(&pre));
        let any = filter(PatternFilter::Any, Some("orders"));
        assert!(any.matches(&lit) && !any.matches(&wild) && !any.matches(&pre));
        let l = filter(PatternFilter::Literal, None);
        assert!(l.matches(&lit) && l.matches(&wild) && !l.matches(&pre));
        let p = filter(PatternFilter::Prefixed, Some("ord"));
        assert!(!p.matches(&lit) && p.matches(&pre));
        let mut deny = filter(PatternFilter::Any, None);
        deny.permission = Some(Deny);
        assert!(!deny.matches(&lit));
    }

    #[test]
    fn bad_bindings_are_invalid_requests() {
        let ok = AclBinding::from_codes(2, "t", 3, "User:a", "*", 3, 3);
        assert!(ok.is_ok());
        for bad in [
            AclBinding::from_codes(1, "t", 3, "User:a", "*", 3, 3),
            AclBinding::from_codes(2, "t", 1, "User:a", "*", 3, 3),
            AclBinding::from_codes(2, "t", 2, "User:a", "*", 3, 3),
            AclBinding::from_codes(2, "t", 3, "User:a", "*", 1, 3),
            AclBinding::from_codes(2, "t", 3, "User:a", "*", 3, 1),
            AclBinding::from_codes(2, "", 3, "User:a", "*", 3, 3),
            AclBinding::from_codes(2, "t", 3, "alice", "*", 3, 3),
            AclBinding::from_codes(2, "t", 3, "User:a", "nohost", 3, 3),
            AclBinding::from_codes(4, "c", 3, "User:a", "*", 3, 3),
        ] {
            assert!(
                matches!(bad, Err((ErrorCode::InvalidRequest, _))),
                "{bad:?}"
            );
        }
    }
}
