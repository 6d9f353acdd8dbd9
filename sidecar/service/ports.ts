/**
 * What the services need from identity and policy, stated structurally so that the service
 * layer depends on behaviour, not on one implementation.
 */
export interface IdentityPort {
  verify(jwt: string): Promise<{ subject: string; claims: Record<string, unknown> }>;
}

export interface LeaseTokenClaims {
  readonly leaseId: string;
  readonly agent: string;
  readonly resource: string;
  readonly expiresAt: number;
}

export interface LeaseTokenPort {
  mint(input: {
    leaseId: string;
    agent: string;
    resource: string;
    account: string;
    expiresAt: number;
  }): Promise<string>;
  verify(token: string): Promise<LeaseTokenClaims>;
}

export type PolicyActionName =
  | "checkout"
  | "reveal"
  | "renew"
  | "tool_call"
  | "revoke"
  | "approve"
  | "register";

export interface PolicyContextInput {
  task_id: string;
  intent: string;
  tool: string;
  ttl: number;
  hour_utc: number;
  active_leases: number;
  approved: boolean;
  dpop: boolean;
}

export interface PolicyDecisionOut {
  readonly decision: "allow" | "deny" | "approval_required";
  readonly policies: readonly string[];
  readonly reasons: readonly string[];
  readonly errors: readonly string[];
}

export interface PolicyPort {
  decide(req: {
    principal: string;
    action: PolicyActionName;
    resource: string;
    context: PolicyContextInput;
    principalAttrs?: Record<string, unknown>;
    resourceGroups?: string[];
  }): PolicyDecisionOut;
}
