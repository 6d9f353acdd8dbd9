import { taskParam } from "../openapi/request-schemas.js";
import { leaseManySchema } from "../openapi/response-schemas.js";
import { revokeSchema } from "../service/index.js";
import { appRoute } from "./app-deps.js";
import { delegationToken } from "./credentials.js";
import { revokeGate } from "./operator-routes.js";

/*
 * Task teardown: every lease of one task ends at once. The task is the unit an agent's work is
 * scoped to (it names it at checkout); its agent completes it, or an operator revokes it.
 */

export const completeTaskRoute = appRoute({
  method: "POST",
  path: "/v1/tasks/:id/complete",
  operationId: "completeTask",
  tag: "agents",
  summary: "Check in every lease the calling agent holds for one task",
  description:
    "The agent's identity JWT (one-time, like every state-changing request). Ends, as check-ins, the caller's own active leases whose checkout named this task id; another agent's leases are never touched, whatever task id they carry. With a delegated token the caller is the acting agent, whose leases these are, as at checkout. Each lease gets its `checkin` audit record and its rotation; the teardown one `task_teardown` record. 202 with the leases ended, an empty list when there were none.",
  auth: "identity",
  params: taskParam,
  responses: { 202: { description: "the leases ended; rotation follows", schema: leaseManySchema } },
  errors: [],
  handle: ({ caller, params, meta, req }, d) =>
    d.leases.completeTask(caller.presented, params.id, meta, delegationToken(req)),
});

export const revokeTaskRoute = appRoute({
  method: "POST",
  path: "/v1/tasks/:id/revoke",
  operationId: "revokeTask",
  tag: "leases",
  summary: "Revoke every active lease of one task, whichever agent holds it (operators)",
  description:
    "Each lease is revoked (its `revocation` record, its rotation) and the teardown is one `task_teardown` record naming the operator. An operator identity needs the revoke action on every resource involved, decided before any lease ends.",
  auth: "operator-revoke",
  params: taskParam,
  body: revokeSchema,
  bodyOptional: true,
  responses: { 202: { description: "the leases ended; rotation follows", schema: leaseManySchema } },
  errors: [],
  handle: ({ caller, params, body, meta }, d) =>
    d.leases.revokeTask(params.id, body.reason, caller.operator.name, meta, revokeGate(caller)),
});
