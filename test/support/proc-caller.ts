import { ProcCallerAttestor } from "../../sidecar/attest/index.js";
import type { AttestedCaller } from "../../sidecar/attest/types.js";

/*
 * The attestation of a real process, for the service tests of issue 22: what the sidecar's
 * attestor finds for a connection's peer, asked for a pid instead of a socket.
 */

const attestor = new ProcCallerAttestor();

/** Who process `pid` is: uid, gid, start time, executable digest and cgroup v2 path. */
export async function attestPid(pid: number): Promise<AttestedCaller> {
  const a = await attestor.attestProcess("tcp", pid);
  if (!a.attested) throw new Error(`process ${pid} could not be attested: ${a.reason}`);
  return a;
}
