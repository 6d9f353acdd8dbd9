import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { LeaseholdError } from "../errors.js";

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Throws 401 unless the request carries `Authorization: Bearer <admin token>`; returns the actor. */
export function requireAdminToken(req: FastifyRequest, adminToken: string): string {
  const h = req.headers.authorization;
  if (!h) throw new LeaseholdError("unauthenticated", "an Authorization: Bearer header is required");
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m?.[1] || !sameSecret(m[1], adminToken))
    throw new LeaseholdError("unauthenticated", "operator credentials required");
  return "admin";
}
