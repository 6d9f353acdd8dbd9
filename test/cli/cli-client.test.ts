import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, SidecarClient } from "../../sidecar/cli/http-client.js";
import { parseConfig } from "../../sidecar/config.js";

/** The CLI reaches a sidecar that listens on its Unix socket only (listen.socket). */
describe("the CLI's client over the Unix socket", () => {
  let dir: string;
  let server: Server;
  const seen: { method?: string; url?: string; host?: string; auth?: string; body: string }[] = [];
  const ADMIN = "admin-token-for-the-socket-test-0123456789";

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lh-cli-socket-"));
    await mkdir(join(dir, "state"), { mode: 0o700 });
    await writeFile(join(dir, "state", "admin.token"), `${ADMIN}\n`, { mode: 0o600 });
    server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString("utf8");
      });
      req.on("end", () => {
        seen.push({
          method: req.method,
          url: req.url,
          host: req.headers.host,
          auth: req.headers.authorization,
          body,
        });
        res.setHeader("content-type", "application/json");
        if (req.url?.startsWith("/v1/missing")) {
          res.statusCode = 404;
          res.end(
            JSON.stringify({ error: { code: "not_found", message: "no such thing", request_id: "r" } }),
          );
          return;
        }
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((resolve) => server.listen(join(dir, "leasehold.sock"), resolve));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const config = () =>
    parseConfig(
      {
        listen: { socket: "./leasehold.sock", port: 1 },
        vault: { address: "http://127.0.0.1:1", auth: { method: "token", token: "t" } },
        identity: { audience: "leasehold" },
        admin: { tokenFile: "./state/admin.token" },
      },
      dir,
    );

  it("sends requests over the socket with Host: localhost and the admin token", async () => {
    const c = await SidecarClient.fromConfig(config());
    expect(await c.request("PUT", "/v1/resources/x?dry_run=true", { name: "x" })).toEqual({ ok: true });
    const last = seen.at(-1);
    expect(last).toMatchObject({
      method: "PUT",
      url: "/v1/resources/x?dry_run=true",
      host: "localhost",
      auth: `Bearer ${ADMIN}`,
    });
    expect(JSON.parse(last?.body ?? "")).toEqual({ name: "x" });
  });

  it("turns an error answer into a one-line error naming the code", async () => {
    const c = await SidecarClient.fromConfig(config());
    const err = await c.request("GET", "/v1/missing").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).message).toBe("not_found: no such thing");
  });

  it("says which socket it could not reach", async () => {
    const cfg = config();
    const c = await SidecarClient.fromConfig({
      ...cfg,
      listen: { ...cfg.listen, socket: join(dir, "nobody.sock") },
    });
    const err = await c.request("GET", "/v1/resources").catch((e: unknown) => e);
    expect((err as ApiError).code).toBe("unreachable");
    expect((err as ApiError).message).toContain(`unix:${join(dir, "nobody.sock")}`);
  });
});
