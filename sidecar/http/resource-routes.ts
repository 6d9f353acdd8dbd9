import { nameParam, registerQuery, removeQuery, rotateSchema } from "../openapi/request-schemas.js";
import {
  leaseManySchema,
  registerResultSchema,
  removeResultSchema,
  resourceListSchema,
  resourceViewSchema,
  rotateResultSchema,
  verifyResultSchema,
} from "../openapi/response-schemas.js";
import { registrationSchema } from "../resources/types.js";
import { revokeSchema } from "../service/index.js";
import { appRoute } from "./app-deps.js";

/* DBAs' and operators' routes on registered resources, decided on the resource named in the path. */

export const listResourcesRoute = appRoute({
  method: "GET",
  path: "/v1/resources",
  operationId: "listResources",
  tag: "resources",
  summary: "List registered resources (operators, DBAs)",
  auth: "operator-register",
  responses: { 200: { description: "registered resources", schema: resourceListSchema } },
  errors: [],
  handle: async ({ caller }, d) => ({
    resources: await caller.visible((await d.resources.list()).resources, (r) => r.name),
  }),
});

export const registerResourceRoute = appRoute({
  method: "PUT",
  path: "/v1/resources/:name",
  operationId: "registerResource",
  tag: "resources",
  summary: "Register or update a resource (verifies, then puts its accounts under management)",
  description:
    "The body is a registration (docs/configuration.md). The admin credential is checked, then each new account on its target (it exists and the admin may change its password; self mode: its password logs in); each new account is rotated once unless importRotation is false. An account another resource manages is a 409 `conflict` naming that resource, dry run included. All or nothing: when an account fails its check or its import rotation, nothing is registered and the answer is an error naming each failed account in `error.details` with the target's reason: 400 `invalid_request` for a refusal (missing account, no privilege, wrong password), 503 `upstream_unavailable` when every failure was a target fault that may pass later. With `allow_partial=true` the accounts that pass are registered (201/200, the rest named in `failed`). `dry_run=true` checks everything, changes nothing and answers 200 with one line per account (`registered: false`).",
  auth: "operator-register",
  params: nameParam,
  query: registerQuery,
  body: registrationSchema,
  bodyName: "registration",
  responses: {
    201: { description: "registered", schema: registerResultSchema },
    200: {
      description: "updated, or the result of a dry run (`registered: false`)",
      schema: registerResultSchema,
    },
  },
  errors: ["invalid_request", "conflict", "upstream_unavailable"],
  resource: ({ params }) => params.name,
  proposedGroups: ({ body }) => body.groups,
  handle: async ({ caller, params, query, body, reply, req }, d) => {
    const out = await d.resources.register(body, {
      dryRun: query.dry_run === "true",
      allowPartial: query.allow_partial === "true",
      pathName: params.name,
      actor: caller.operator.name,
      requestId: req.id,
      canSee: async (resource) => (await caller.visible([resource], (r) => r)).length > 0,
    });
    reply.status(out.created && out.registered ? 201 : 200);
    return out;
  },
});

export const showResourceRoute = appRoute({
  method: "GET",
  path: "/v1/resources/:name",
  operationId: "showResource",
  tag: "resources",
  summary: "A resource and the state of each account (never a password)",
  auth: "operator-register",
  params: nameParam,
  responses: { 200: { description: "the resource", schema: resourceViewSchema } },
  errors: ["not_found"],
  resource: ({ params }) => params.name,
  handle: ({ params }, d) => d.resources.show(params.name),
});

export const removeResourceRoute = appRoute({
  method: "DELETE",
  path: "/v1/resources/:name",
  operationId: "removeResource",
  tag: "resources",
  summary: "Remove a registration (force=true revokes its active leases first)",
  description:
    "Each account a lease may have seen gets one last rotation. Without force, an active lease or an account that could not be rotated is a 409 saying what would help (try again only where that can succeed). With force, the leases are revoked and the registration, its pool and its ownership entries are released whatever state the accounts are in; the answer says what each password was left as. The account records stay in Vault: the last working password of each account is kept.",
  auth: "operator-register",
  params: nameParam,
  query: removeQuery,
  responses: { 200: { description: "removed", schema: removeResultSchema } },
  errors: ["not_found", "conflict"],
  resource: ({ params }) => params.name,
  handle: ({ caller, params, query, meta }, d) => {
    const actor = caller.operator.name;
    return d.resources.remove(params.name, {
      force: query.force === "true",
      actor,
      revoke: (id) => d.leases.revoke(id, "resource removed", actor, meta),
    });
  },
});

export const rotateResourceRoute = appRoute({
  method: "POST",
  path: "/v1/resources/:name/rotate",
  operationId: "rotateResource",
  tag: "resources",
  summary: "Rotate every account that is not leased now (quarantined ones included)",
  description:
    'With `{ "admin": true }`: rotate the resource\'s admin password on its target instead (one result, the admin).',
  auth: "operator-register",
  params: nameParam,
  body: rotateSchema,
  bodyOptional: true,
  responses: { 200: { description: "the outcome per account", schema: rotateResultSchema } },
  errors: ["not_found"],
  resource: ({ params }) => params.name,
  handle: ({ caller, params, body }, d) =>
    body.admin
      ? d.resources.rotateAdmin(params.name, caller.operator.name)
      : d.resources.rotateAll(params.name, caller.operator.name),
});

export const revokeResourceRoute = appRoute({
  method: "POST",
  path: "/v1/resources/:name/revoke",
  operationId: "revokeResource",
  tag: "resources",
  summary: "Revoke every active lease of a resource (operators)",
  auth: "operator-revoke",
  params: nameParam,
  body: revokeSchema,
  bodyOptional: true,
  responses: { 202: { description: "the leases ended", schema: leaseManySchema } },
  errors: [],
  resource: ({ params }) => params.name,
  handle: ({ caller, params, body, meta }, d) =>
    d.leases.revokeResource(params.name, body.reason, caller.operator.name, meta),
});

export const verifyResourceRoute = appRoute({
  method: "POST",
  path: "/v1/resources/:name/verify",
  operationId: "verifyResource",
  tag: "resources",
  summary: "Check that the admin credential and each stored password log in",
  auth: "operator-register",
  params: nameParam,
  responses: { 200: { description: "the outcome per account", schema: verifyResultSchema } },
  errors: ["not_found"],
  resource: ({ params }) => params.name,
  handle: ({ params }, d) => d.resources.verify(params.name),
});
