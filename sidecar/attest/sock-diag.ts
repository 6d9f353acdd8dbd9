import { isIPv4 } from "node:net";
import { loadLibc } from "./libc.js";
import type { PeerSocket } from "./proc-net.js";

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const MSG_DONTWAIT = 0x40;
const IPPROTO_TCP = 6;
/** nlmsghdr (16) + inet_diag_req_v2 (8 + inet_diag_sockid 48). */
const REQ_LEN = 72;

let fd: number | undefined;
let seq = 0;
const reply = Buffer.alloc(8192);

/** The sockid's address: 4 words, network byte order, IPv4 in the first. */
function writeAddr(buf: Buffer, at: number, address: string): boolean {
  const v4 = isIPv4(address) ? address : /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (v4 !== undefined) {
    for (const [i, b] of v4.split(".").entries()) buf.writeUInt8(Number(b), at + i);
    return true;
  }
  if (address !== "::1") return false;
  buf.writeUInt8(1, at + 15);
  return true;
}

/**
 * Looks up one TCP socket by its exact four-tuple with the kernel's sock_diag (netlink
 * `SOCK_DIAG_BY_FAMILY`, no dump): the socket whose local end is `local` and remote end
 * `remote`. A hash lookup in the kernel, where reading `/proc/net/tcp` walks every bucket.
 * Only loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x) are handled. Undefined when there is
 * no such socket; throws when netlink cannot be used (the caller falls back to /proc).
 */
export function diagLookup(
  local: { address: string; port: number },
  remote: { address: string; port: number },
): PeerSocket | undefined {
  const libc = loadLibc();
  if (libc instanceof Error) throw libc;
  if (fd === undefined) {
    const s = libc.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (s < 0) throw new Error("socket(AF_NETLINK, NETLINK_SOCK_DIAG) failed");
    fd = s;
  }
  const req = Buffer.alloc(REQ_LEN);
  const v6 = !isIPv4(local.address) && !/^::ffff:/i.test(local.address);
  seq = (seq + 1) >>> 0;
  const mySeq = seq;
  req.writeUInt32LE(REQ_LEN, 0);
  req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  req.writeUInt16LE(NLM_F_REQUEST, 6);
  req.writeUInt32LE(mySeq, 8);
  req.writeUInt8(v6 ? AF_INET6 : AF_INET, 16);
  req.writeUInt8(IPPROTO_TCP, 17);
  req.writeUInt32LE(0xffffffff, 20); // every state
  req.writeUInt16BE(local.port, 24);
  req.writeUInt16BE(remote.port, 26);
  if (!writeAddr(req, 28, local.address) || !writeAddr(req, 44, remote.address)) return undefined;
  req.writeUInt32LE(0xffffffff, 64); // INET_DIAG_NOCOOKIE
  req.writeUInt32LE(0xffffffff, 68);
  if (libc.send(fd, req, REQ_LEN, 0) !== REQ_LEN) throw new Error("sock_diag request not sent");
  // The kernel answers an exact lookup while handling send(): the reply is already queued.
  for (;;) {
    const n = libc.recv(fd, reply, reply.length, MSG_DONTWAIT);
    if (n < 16) throw new Error("sock_diag gave no answer");
    if (reply.readUInt32LE(8) !== mySeq) continue; // a stale answer to an earlier request
    if (reply.readUInt16LE(4) === NLMSG_ERROR) {
      const errno = -reply.readInt32LE(16);
      if (errno === 2) return undefined; // ENOENT: no such socket
      throw new Error(`sock_diag lookup failed (errno ${errno})`);
    }
    // nlmsghdr (16), inet_diag_msg: family..retrans (4), sockid (48), expires, rqueue, wqueue, uid, inode.
    if (n < 16 + 72) throw new Error("sock_diag answer too short");
    const inode = reply.readUInt32LE(16 + 68);
    return inode > 0 ? { uid: reply.readUInt32LE(16 + 64), inode } : undefined;
  }
}
