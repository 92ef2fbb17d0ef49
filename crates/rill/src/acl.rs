//! `rill acl add|list|delete`: the cluster's ACLs (kafka-acls.sh), with its flag names.

use rill_client::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermission, AclResourceType,
    Admin, AdminConfig,
};

use crate::cli::{self, Explain as _, Table};

/// Add, list and delete ACLs (the broker needs authorizer.class.name set).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  rill acl add --allow-principal User:alice --operation read --operation describe --topic orders
  rill acl add --allow-principal User:bob --operation write --topic eu- --resource-pattern-type prefixed
  rill acl add --deny-principal User:mallory --operation all --topic '*'
  rill acl add --allow-principal User:alice --operation read --group billing
  rill acl list --topic orders --resource-pattern-type match   # every ACL that applies to orders
  rill acl delete --principal User:alice --topic orders")]
pub(crate) struct Args {
    #[command(flatten)]
    bootstrap: cli::Bootstrap,

    #[command(subcommand)]
    command: Command,
}

/// The resources an ACL command is about.
#[derive(Debug, clap::Args)]
struct Resources {
    /// A topic (repeatable); `*` with a literal pattern is every topic
    #[arg(long = "topic", env = "RILL_ACL_TOPIC")]
    topics: Vec<String>,

    /// A consumer group (repeatable)
    #[arg(long = "group", env = "RILL_ACL_GROUP")]
    groups: Vec<String>,

    /// The cluster
    #[arg(long, env = "RILL_ACL_CLUSTER")]
    cluster: bool,

    /// A transactional id (repeatable)
    #[arg(long = "transactional-id", env = "RILL_ACL_TRANSACTIONAL_ID")]
    transactional_ids: Vec<String>,
}

impl Resources {
    fn list(&self) -> Vec<(AclResourceType, String)> {
        let mut out: Vec<(AclResourceType, String)> = Vec::new();
        out.extend(
            self.topics
                .iter()
                .map(|t| (AclResourceType::Topic, t.clone())),
        );
        out.extend(
            self.groups
                .iter()
                .map(|g| (AclResourceType::Group, g.clone())),
        );
        if self.cluster {
            out.push((AclResourceType::Cluster, "kafka-cluster".to_owned()));
        }
        out.extend(
            self.transactional_ids
                .iter()
                .map(|t| (AclResourceType::TransactionalId, t.clone())),
        );
        out
    }
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add ACLs: every principal given, for every operation, on every resource given.
    Add {
        #[command(flatten)]
        resources: Resources,
        /// Principal to allow, `User:name` or `User:*` (repeatable)
        #[arg(long = "allow-principal", env = "RILL_ACL_ALLOW_PRINCIPAL")]
        allow: Vec<String>,
        /// Principal to deny (repeatable); a DENY wins over any ALLOW
        #[arg(long = "deny-principal", env = "RILL_ACL_DENY_PRINCIPAL")]
        deny: Vec<String>,
        /// Host the allowed principals may come from: an IP address or `*`
        #[arg(long, env = "RILL_ACL_ALLOW_HOST", default_value = "*")]
        allow_host: String,
        /// Host the denied principals are denied from: an IP address or `*`
        #[arg(long, env = "RILL_ACL_DENY_HOST", default_value = "*")]
        deny_host: String,
        /// Operation (repeatable): read, write, create, delete, alter, describe,
        /// cluster-action, describe-configs, alter-configs, idempotent-write, all
        #[arg(long = "operation", env = "RILL_ACL_OPERATION", required = true)]
        operations: Vec<AclOperation>,
        /// literal (the name itself, `*` for all) or prefixed (names starting with it)
        #[arg(
            long,
            env = "RILL_ACL_RESOURCE_PATTERN_TYPE",
            default_value = "literal"
        )]
        resource_pattern_type: AclPatternType,
    },
    /// List ACLs, all of them or those matching the filters.
    #[command(visible_alias = "describe")]
    List {
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete every ACL matching the filters (a resource or a principal is required), and
    /// print those removed.
    #[command(visible_alias = "remove")]
    Delete {
        #[command(flatten)]
        filter: Filter,
    },
}

/// Which ACLs a list or delete is about; what is not given matches anything.
#[derive(Debug, clap::Args)]
struct Filter {
    #[command(flatten)]
    resources: Resources,
    /// Only this principal's ACLs
    #[arg(long, env = "RILL_ACL_PRINCIPAL")]
    principal: Option<String>,
    /// Only ACLs for this host
    #[arg(long, env = "RILL_ACL_HOST")]
    host: Option<String>,
    /// Only this operation
    #[arg(long, env = "RILL_ACL_OPERATION")]
    operation: Option<AclOperation>,
    /// Only allow or deny ACLs
    #[arg(long, env = "RILL_ACL_PERMISSION")]
    permission: Option<AclPermission>,
    /// any (the exact name, any pattern; the default), literal, prefixed, or match (every ACL
    /// that applies to the name: the wildcard and matching prefixes too)
    #[arg(long, env = "RILL_ACL_RESOURCE_PATTERN_TYPE", default_value = "any")]
    resource_pattern_type: AclPatternType,
}

impl Filter {
    fn filters(&self) -> Vec<AclBindingFilter> {
        let base = AclBindingFilter {
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.unwrap_or(AclOperation::Any),
            permission: self.permission.unwrap_or(AclPermission::Any),
            pattern_type: self.resource_pattern_type,
            ..AclBindingFilter::any()
        };
        let resources = self.resources.list();
        if resources.is_empty() {
            return vec![base];
        }
        resources
            .into_iter()
            .map(|(resource_type, name)| AclBindingFilter {
                resource_type,
                name: Some(name),
                ..base.clone()
            })
            .collect()
    }
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        cli::block_on(async move {
            let config = self.bootstrap.read_only_config()?;
            let cluster = self.bootstrap.connect(config.clone()).await?;
            let admin = Admin::with_cluster(AdminConfig::new(config), cluster);
            match self.command {
                Command::Add {
                    resources,
                    allow,
                    deny,
                    allow_host,
                    deny_host,
                    operations,
                    resource_pattern_type,
                } => {
                    let acls = bindings(
                        &resources,
                        &[
                            (AclPermission::Allow, &allow, &allow_host),
                            (AclPermission::Deny, &deny, &deny_host),
                        ],
                        &operations,
                        resource_pattern_type,
                    )?;
                    add(&admin, &acls).await
                }
                Command::List { filter } => list(&admin, &filter).await,
                Command::Delete { filter } => {
                    if filter.resources.list().is_empty() && filter.principal.is_none() {
                        anyhow::bail!(
                            "say which ACLs to delete: a resource (--topic, --group, --cluster, \
                             --transactional-id) or --principal"
                        );
                    }
                    delete(&admin, &filter).await
                }
            }
        })?
    }
}

/// Every (principal, operation, resource) ACL an `add` names.
fn bindings(
    resources: &Resources,
    principals: &[(AclPermission, &Vec<String>, &String)],
    operations: &[AclOperation],
    pattern_type: AclPatternType,
) -> anyhow::Result<Vec<AclBinding>> {
    let resources = resources.list();
    if resources.is_empty() {
        anyhow::bail!("name a resource: --topic, --group, --cluster or --transactional-id");
    }
    if principals.iter().all(|(_, p, _)| p.is_empty()) {
        anyhow::bail!("name a principal: --allow-principal or --deny-principal");
    }
    if !matches!(
        pattern_type,
        AclPatternType::Literal | AclPatternType::Prefixed
    ) {
        anyhow::bail!("an ACL's --resource-pattern-type is literal or prefixed");
    }
    let mut out = Vec::new();
    for (resource_type, name) in &resources {
        for (permission, names, host) in principals {
            for principal in names.iter() {
                for operation in operations {
                    out.push(AclBinding {
                        resource_type: *resource_type,
                        name: name.clone(),
                        pattern_type,
                        principal: principal.clone(),
                        host: (*host).clone(),
                        operation: *operation,
                        permission: *permission,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn table(acls: &[AclBinding]) -> String {
    let mut table = Table::new([
        "RESOURCE",
        "NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ]);
    for a in acls {
        table.row(vec![
            a.resource_type.to_string(),
            a.name.clone(),
            a.pattern_type.to_string(),
            a.principal.clone(),
            a.host.clone(),
            a.operation.to_string(),
            a.permission.to_string(),
        ]);
    }
    table.render()
}

async fn add(admin: &Admin, acls: &[AclBinding]) -> anyhow::Result<()> {
    let results = admin.create_acls(acls).await.explain()?;
    let mut added = Vec::new();
    let mut failures = Vec::new();
    for (acl, result) in acls.iter().zip(results) {
        match result {
            Ok(()) => added.push(acl.clone()),
            Err(err) => failures.push(anyhow::anyhow!(cli::explain(&err))),
        }
    }
    if !added.is_empty() {
        cli::print(&format!("added {} ACL(s)\n{}", added.len(), table(&added)))?;
    }
    crate::topic::first_of(failures)
}

async fn list(admin: &Admin, filter: &Filter) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for f in filter.filters() {
        all.extend(admin.describe_acls(&f).await.explain()?);
    }
    all.sort();
    all.dedup();
    cli::print(&table(&all))
}

async fn delete(admin: &Admin, filter: &Filter) -> anyhow::Result<()> {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for result in admin.delete_acls(&filter.filters()).await.explain()? {
        match result {
            Ok(acls) => removed.extend(acls),
            Err(err) => failures.push(anyhow::anyhow!(cli::explain(&err))),
        }
    }
    removed.sort();
    removed.dedup();
    cli::print(&format!(
        "removed {} ACL(s)\n{}",
        removed.len(),
        table(&removed)
    ))?;
    crate::topic::first_of(failures)
}
