import { parseArgs } from 'node:util';
import { LABEL_PATTERN, MAX_AGENT_LABELS } from '@farm/queue';

/** `start:agent -- [--platform P] [--emulated] [--name N] [--labels a,b] [--ssh URL]` */
export interface AgentArgs {
  platform?: string;
  emulated: boolean;
  name?: string;
  labels: string[];
  ssh?: string;
  sshKey?: string;
  sshKnownHosts?: string;
  sshHostKey?: string;
}

export const AGENT_USAGE =
  'usage: agent [--platform os/arch[/variant]] [--emulated] [--name NAME] [--labels a,b]\n' +
  '             [--ssh ssh://user@host:port --ssh-key FILE (--ssh-known-hosts FILE | --ssh-host-key SHA256:...)]';

export function parseAgentArgs(argv: string[]): AgentArgs {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      platform: { type: 'string' },
      emulated: { type: 'boolean', default: false },
      name: { type: 'string' },
      labels: { type: 'string' },
      ssh: { type: 'string' },
      'ssh-key': { type: 'string' },
      'ssh-known-hosts': { type: 'string' },
      'ssh-host-key': { type: 'string' },
    },
  });
  if (values.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(values.name)) {
    throw new Error('--name may contain letters, digits, ".", "_" and "-" (at most 64)');
  }
  const labels = (values.labels ?? '')
    .split(',')
    .map((label) => label.trim())
    .filter(Boolean);
  const badLabel = labels.find((label) => !LABEL_PATTERN.test(label));
  if (badLabel) throw new Error(`--labels: "${badLabel}" is not a label (lowercase letters, digits and "-")`);
  if (new Set(labels).size > MAX_AGENT_LABELS) throw new Error(`--labels: at most ${MAX_AGENT_LABELS} labels`);
  return {
    platform: values.platform,
    emulated: values.emulated ?? false,
    name: values.name,
    labels: [...new Set(labels)].sort(),
    ssh: values.ssh,
    sshKey: values['ssh-key'],
    sshKnownHosts: values['ssh-known-hosts'],
    sshHostKey: values['ssh-host-key'],
  };
}
