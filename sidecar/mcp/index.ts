export type {
  McpBackend,
  McpCheckoutHooks,
  McpCheckoutRequest,
  McpLeaseHandle,
  McpResourceInfo,
  McpToolCall,
} from "./backend.js";
export { createSdkBackend } from "./sdk-backend.js";
export { checkinAll, createLeaseholdMcpServer, type LeaseholdMcpServerOptions } from "./server.js";
export { runStdioMcpServer } from "./stdio.js";
