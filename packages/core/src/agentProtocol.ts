import { ProtocolVersionError } from './errors.js';

/**
 * Versions of the agent protocol (the calls between agent and server). 1: single-item calls only (heartbeat, ack,
 * status report and log append per run). 2: adds `POST /api/agents/{id}/sync`, which batches them, and announces
 * the versions at registration. A version rises only when an agent or a server would otherwise misread the other.
 */
export const AGENT_PROTOCOL_VERSION = 2;
/** The oldest agent protocol this server serves: agents of protocol 1 keep working with their single-item calls. */
export const MIN_AGENT_PROTOCOL_VERSION = 1;
/** The oldest server protocol this agent can use: it sends heartbeats, acks, reports and logs in syncs (2). */
export const AGENT_NEEDS_SERVER_PROTOCOL = 2;

/**
 * At agent start, from what the server announced at registration (fields absent: a server of protocol 1): throws
 * ProtocolVersionError naming the side to upgrade when this agent cannot speak to that server.
 */
export function assertAgentProtocol(
  announced: { protocol_version?: number | undefined; min_agent_protocol_version?: number | undefined },
  agent = { version: AGENT_PROTOCOL_VERSION, needsServer: AGENT_NEEDS_SERVER_PROTOCOL },
): void {
  const server = announced.protocol_version ?? 1;
  const minAgent = announced.min_agent_protocol_version ?? 1;
  if (server < agent.needsServer) throw new ProtocolVersionError('server', agent.version, server, agent.needsServer);
  if (agent.version < minAgent) throw new ProtocolVersionError('agent', agent.version, server, minAgent);
}
