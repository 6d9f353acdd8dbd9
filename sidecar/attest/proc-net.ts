import { isIPv4, isIPv6 } from "node:net";

/** One end of a TCP connection, as the socket reports it. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** The peer's socket as `/proc/net/tcp{,6}` lists it. */
export interface PeerSocket {
  readonly inode: number;
  /** The uid that created the socket. */
  readonly uid: number;
}

const hex2 = (b: number) => b.toString(16).padStart(2, "0");

function ipv4Bytes(address: string): number[] {
  return address.split(".").map(Number);
}

function ipv6Bytes(address: string): number[] | undefined {
  let a = address;
  const zone = a.indexOf("%");
  if (zone >= 0) a = a.slice(0, zone);
  let tail: number[] = [];
  const lastColon = a.lastIndexOf(":");
  if (a.includes(".", lastColon)) {
    tail = ipv4Bytes(a.slice(lastColon + 1));
    a = `${a.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = a.split("::");
  const left = head ? head.split(":") : [];
  const right = rest ? rest.split(":") : [];
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array(fill).fill("0"), ...right];
  if (groups.length !== 8) return undefined;
  const bytes = groups.flatMap((g) => {
    const v = Number.parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The IPv4 address an IPv4 or IPv4-mapped IPv6 address stands for, else undefined. */
function asIPv4(address: string): string | undefined {
  if (isIPv4(address)) return address;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1];
}

/** True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z. */
export function isLoopback(address: string): boolean {
  const v4 = asIPv4(address);
  if (v4 !== undefined) return v4.startsWith("127.");
  return isIPv6(address) && ipv6Bytes(address)?.every((b, i) => b === (i === 15 ? 1 : 0)) === true;
}

/** `/proc/net/tcp`'s form: the address as the kernel's 32-bit word in host (little-endian) order. */
function procV4(address: string, port: number): string {
  const b = ipv4Bytes(address);
  return `${[b[3], b[2], b[1], b[0]].map((x) => hex2(x ?? 0)).join("")}:${port.toString(16).padStart(4, "0")}`.toUpperCase();
}

/** `/proc/net/tcp6`'s form: four 32-bit words, each in host (little-endian) order. */
function procV6(bytes: readonly number[], port: number): string {
  let s = "";
  for (let w = 0; w < 4; w++) for (let i = 3; i >= 0; i--) s += hex2(bytes[w * 4 + i] ?? 0);
  return `${s}:${port.toString(16).padStart(4, "0")}`.toUpperCase();
}

/**
 * The spellings one endpoint can have in each table: an IPv4 peer is in `tcp` if its socket is
 * IPv4, or in `tcp6` as `::ffff:a.b.c.d` if it is a dual-stack IPv6 socket.
 */
export function procForms(e: Endpoint): { tcp?: string; tcp6?: string } {
  const v4 = asIPv4(e.address);
  if (v4 !== undefined) {
    return {
      tcp: procV4(v4, e.port),
      tcp6: procV6([...Array(10).fill(0), 0xff, 0xff, ...ipv4Bytes(v4)], e.port),
    };
  }
  const b = ipv6Bytes(e.address);
  return b ? { tcp6: procV6(b, e.port) } : {};
}

/**
 * Finds, in the text of one `/proc/net/tcp{,6}` table, the row whose local end is `local` and
 * remote end is `remote` (both in that table's form); its uid and inode. Inode 0 (a socket no
 * process holds any more) counts as not found.
 */
export function findRow(table: string, local: string, remote: string): PeerSocket | undefined {
  const needle = `: ${local} ${remote} `;
  let at = table.indexOf(needle);
  while (at >= 0) {
    const end = table.indexOf("\n", at);
    const cols = table
      .slice(at + needle.length, end < 0 ? undefined : end)
      .trim()
      .split(/\s+/);
    // After local and remote: st, tx:rx, tr:tm, retrnsmt, uid, timeout, inode.
    const uid = Number(cols[4]);
    const inode = Number(cols[6]);
    if (Number.isInteger(uid) && Number.isInteger(inode) && inode > 0) return { uid, inode };
    at = table.indexOf(needle, at + 1);
  }
  return undefined;
}
