import { describe, expect, it } from "vitest";
import { findRow, isLoopback, procForms } from "../../sidecar/attest/proc-net.js";
import { containerId, parseCgroup, parseStat, parseStatusIds } from "../../sidecar/attest/proc-process.js";

const ID = "3f0e1d2c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

describe("/proc parsing", () => {
  it("reads ppid and start time after a comm holding spaces and parentheses", () => {
    const rest = ["S", "41", ...Array(17).fill("0"), "987654", "0", "0"].join(" ");
    expect(parseStat(`1234 (my (odd) prog) ) ${rest}\n`)).toEqual({
      pid: 1234,
      ppid: 41,
      startTime: "987654",
    });
    expect(parseStat("garbage")).toBeUndefined();
  });

  it("takes the effective uid and gid from status, the 0:: line from cgroup", () => {
    expect(parseStatusIds("Name:\tx\nUid:\t1000\t1001\t1000\t1001\nGid:\t50\t51\t50\t51\n")).toEqual({
      uid: 1001,
      gid: 51,
    });
    expect(parseCgroup("12:pids:/x\n0::/user.slice/user-1000.slice/session-3.scope\n")).toBe(
      "/user.slice/user-1000.slice/session-3.scope",
    );
    expect(parseCgroup("4:memory:/x\n")).toBeUndefined();
  });

  it("finds the container id that docker, containerd and CRI-O put in the cgroup path", () => {
    expect(containerId(`/system.slice/docker-${ID}.scope`)).toBe(ID);
    expect(containerId(`/docker/${ID}`)).toBe(ID);
    expect(containerId(`/kubepods.slice/kubepods-pod1.slice/cri-containerd-${ID}.scope`)).toBe(ID);
    expect(containerId(`/kubepods/burstable/pod1/crio-${ID}.scope`)).toBe(ID);
    expect(containerId("/user.slice/user-1000.slice/session-3.scope")).toBeUndefined();
    expect(containerId(`/x/${ID}0`)).toBeUndefined();
  });

  it("spells endpoints as /proc/net/tcp{,6} do and finds the row with its uid and inode", () => {
    expect(procForms({ address: "127.0.0.1", port: 0x1f90 })).toEqual({
      tcp: "0100007F:1F90",
      tcp6: "0000000000000000FFFF00000100007F:1F90",
    });
    expect(procForms({ address: "::ffff:127.0.0.1", port: 80 }).tcp).toBe("0100007F:0050");
    expect(procForms({ address: "::1", port: 80 })).toEqual({
      tcp6: "00000000000000000000000001000000:0050",
    });
    const table = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:1F90 0100007F:0050 06 00000000:00000000 03:00000D2B 00000000     0        0 0 3 0",
      "   1: 0100007F:1F90 0100007F:0050 01 00000000:00000000 00:00000000 00000000  1001        0 43210 1 0",
    ].join("\n");
    expect(findRow(table, "0100007F:1F90", "0100007F:0050")).toEqual({ uid: 1001, inode: 43210 });
    expect(findRow(table, "0100007F:0050", "0100007F:1F90")).toBeUndefined();
  });

  it("knows loopback addresses", () => {
    for (const a of ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"])
      expect(isLoopback(a), a).toBe(true);
    for (const a of ["10.0.0.1", "::", "::2", "::ffff:10.0.0.1", "fe80::1"])
      expect(isLoopback(a), a).toBe(false);
  });
});
