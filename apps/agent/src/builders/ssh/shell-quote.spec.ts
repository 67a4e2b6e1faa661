import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { shellCommand, shellQuote } from './shell-quote';

const run = promisify(execFile);

describe('shellQuote', () => {
  test.each<[string, string]>([
    ['plain', `'plain'`],
    ['', `''`],
    ["it's", `'it'\\''s'`],
    ["''", `''\\'''\\'''`],
    ['$HOME `id` $(id) "x" \\n; rm -rf / &', `'$HOME \`id\` $(id) "x" \\n; rm -rf / &'`],
    ['-rf', `'-rf'`],
    ['a\nb', `'a\nb'`],
  ])('%j -> %s', (input, quoted) => {
    expect(shellQuote(input)).toBe(quoted);
  });

  test('refuses a NUL character', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('shellCommand', () => {
  test('refuses an empty command', () => {
    expect(() => shellCommand([])).toThrow(/program/);
  });

  // The point of quoting: a real shell must hand the program exactly the arguments given.
  test.each(['sh', 'bash'])('%s parses it back into the same arguments', async (shell) => {
    const args = [
      "it's",
      '',
      ' spaced  out ',
      '$PATH',
      '`id`',
      '$(id)',
      '"\'"',
      '\\',
      '*',
      '~',
      'a\nb',
      '-n',
      '#x',
      ';&|<>',
    ];
    const line = shellCommand(['printf', '%s\\0', ...args]);
    const { stdout } = await run(shell, ['-c', line]);
    expect(stdout.split('\0').slice(0, -1)).toEqual(args);
  });
});
