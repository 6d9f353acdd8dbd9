import { connect, createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { AdapterError } from "../../adapters/adapter.js";
import {
  accountIdentityOf,
  hostPort,
  namingTarget,
  networkCause,
  normalizeHost,
  tlsCause,
} from "../../adapters/target-address.js";
import { freePort } from "../support/free-port.js";

describe("target addresses and causes in leasehold's words", () => {
  it("normalizeHost: one loopback host, canonical IPs, case and brackets ignored", () => {
    for (const h of [
      "localhost",
      "LOCALHOST",
      "localhost.",
      "127.0.0.1",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
    ]) {
      expect(normalizeHost(h), h).toBe("localhost");
    }
    expect(normalizeHost("DB.Example.ORG.")).toBe("db.example.org");
    expect(normalizeHost("[2001:DB8:0:0::1]")).toBe("2001:db8::1");
    expect(normalizeHost("10.0.0.1")).toBe("10.0.0.1");
    expect(normalizeHost("127.0.0.2")).toBe("127.0.0.2");
  });

  it("accountIdentityOf: unambiguous whatever the account holds", () => {
    expect(accountIdentityOf("postgres", "127.0.0.1", 5432, "app")).toBe("postgres://localhost:5432/app");
    expect(accountIdentityOf("mysql", "2001:db8::1", 3306, "a/b@%")).toBe(
      "mysql://[2001:db8::1]:3306/a%2Fb%40%25",
    );
    expect(accountIdentityOf("x", "h", 1, "a/b")).not.toBe(accountIdentityOf("x", "h", 1, "a%2Fb"));
  });

  it("hostPort brackets IPv6", () => {
    expect(hostPort("127.0.0.1", 5432)).toBe("127.0.0.1:5432");
    expect(hostPort("::1", 5432)).toBe("[::1]:5432");
  });

  it("networkCause names a real refused connection's error", async () => {
    const port = await freePort();
    const code = await new Promise<string | undefined>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.on("error", (err: NodeJS.ErrnoException) => resolve(err.code));
    });
    expect(networkCause(code)).toBe("connection refused (ECONNREFUSED)");
    expect(networkCause(undefined)).toBe("connection closed");
  });

  it("tlsCause says the handshake failed and why; other errors are not TLS", async () => {
    // A plain TCP server that closes at once: a TLS client sees the handshake fail.
    const { connect: tlsConnect } = await import("node:tls");
    const server = createServer((s) => s.end("not TLS at all\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const err = await new Promise<Error>((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: true });
      s.on("error", resolve);
    });
    server.close();
    expect((err as NodeJS.ErrnoException).code).toBe("ERR_SSL_WRONG_VERSION_NUMBER");
    expect(tlsCause(err)).toBe("TLS handshake failed: wrong version number (ERR_SSL_WRONG_VERSION_NUMBER)");
    expect(
      tlsCause(Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" })),
    ).toBe("TLS handshake failed: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)");
    expect(tlsCause(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBeUndefined();
  });

  it("namingTarget puts the address in the adapter's errors and the bound in timeouts, keeping the rest", async () => {
    const cause = new Error("socket");
    const err = await namingTarget("postgres", "127.0.0.1:5433", 10_000, async () => {
      throw new AdapterError("unreachable", "postgres: connect: connection refused (ECONNREFUSED)", true, {
        cause,
      });
    }).catch((e: unknown) => e as AdapterError);
    expect(err.message).toBe("postgres 127.0.0.1:5433: connect: connection refused (ECONNREFUSED)");
    expect(err.code).toBe("unreachable");
    expect(err.retryable).toBe(true);
    expect(err.cause).toBe(cause);
    const timeout = await namingTarget("mysql", "db:3306", 10_000, async () => {
      throw new AdapterError("timeout", "mysql: connect timed out", true);
    }).catch((e: unknown) => e as AdapterError);
    expect(timeout.message).toBe("mysql db:3306: connect timed out after 10000 ms");
    expect(await namingTarget("x", "h:1", 1, async () => 7)).toBe(7);
  });
});
