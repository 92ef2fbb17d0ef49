//! CreateAcls, DescribeAcls and DeleteAcls: ACLs through the metadata quorum. Without an
//! authorizer Kafka answers SECURITY_DISABLED, and so does Rill.

use rill_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use rill_protocol::kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use rill_protocol::kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource,
};
use rill_protocol::kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use rill_protocol::{ErrorCode, StrBytes};

use super::message;
use crate::authorizer::{AclBinding, AclFilter};
use crate::broker::Broker;

const DISABLED: &str = "no authorizer is configured on the broker (authorizer.class.name)";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) async fn create(broker: &Broker, req: CreateAclsRequest) -> CreateAclsResponse {
    let refused = |code: ErrorCode, why: &str| {
        AclCreationResult::default()
            .with_error_code(code.code())
            .with_error_message(message(why))
    };
    if !broker.authorizer.enabled() {
        let results = req
            .creations
            .iter()
            .map(|_| refused(ErrorCode::SecurityDisabled, DISABLED))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<Result<AclBinding, (ErrorCode, String)>> = req
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_codes(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let outcome = if valid.is_empty() {
        Ok(())
    } else {
        broker.create_acls(valid).await
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &outcome) {
            (Err((code, why)), _) => refused(code, &why),
            (Ok(_), Err((code, why))) => refused(*code, why),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub(crate) fn describe(broker: &Broker, req: &DescribeAclsRequest) -> DescribeAclsResponse {
    if !broker.authorizer.enabled() {
        return DescribeAclsResponse::default()
            .with_error_code(ErrorCode::SecurityDisabled.code())
            .with_error_message(message(DISABLED));
    }
    let filter = match AclFilter::from_codes(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(filter) => filter,
        Err((code, why)) => {
            return DescribeAclsResponse::default()
                .with_error_code(code.code())
                .with_error_message(message(why));
        }
    };
    // The image keeps bindings ordered by resource, so each resource's ACLs are adjacent.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    let mut last: Option<(i8, String, i8)> = None;
    for b in broker
        .quorum
        .image()
        .acls
        .iter()
        .filter(|b| filter.matches(b))
    {
        let key = (b.resource_type.code(), b.name.clone(), b.pattern.code());
        if last.as_ref() != Some(&key) {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(key.0)
                    .with_resource_name(text(&key.1))
                    .with_pattern_type(key.2),
            );
            last = Some(key);
        }
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(
                AclDescription::default()
                    .with_principal(text(&b.principal))
                    .with_host(text(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub(crate) async fn delete(broker: &Broker, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let failed = |code: ErrorCode, why: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(message(why))
    };
    if !broker.authorizer.enabled() {
        let results = req
            .filters
            .iter()
            .map(|_| failed(ErrorCode::SecurityDisabled, DISABLED))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<Result<AclFilter, (ErrorCode, String)>> = req
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_codes(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        broker.delete_acls(valid).await
    };
    let mut removed = match &outcome {
        Ok(removed) => removed.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &outcome) {
            (Err((code, why)), _) => failed(code, &why),
            (Ok(_), Err((code, why))) => failed(*code, why),
            (Ok(_), Ok(_)) => {
                let matching = removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(text(&b.name))
                            .with_pattern_type(b.pattern.code())
                            .with_principal(text(&b.principal))
                            .with_host(text(&b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
