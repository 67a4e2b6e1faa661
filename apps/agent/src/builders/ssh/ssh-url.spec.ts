import { parseSshUrl } from './ssh-url';

describe('parseSshUrl', () => {
  test.each<[string, { user: string; host: string; port: number }]>([
    ['ssh://root@10.0.0.5:2222', { user: 'root', host: '10.0.0.5', port: 2222 }],
    ['ssh://builder@arm1.example.com', { user: 'builder', host: 'arm1.example.com', port: 22 }],
    ['ssh://ci@arm1.example.com/', { user: 'ci', host: 'arm1.example.com', port: 22 }],
    ['ssh://root@[::1]:22', { user: 'root', host: '::1', port: 22 }],
  ])('%s', (url, expected) => {
    expect(parseSshUrl(url)).toEqual(expected);
  });

  test.each<[string, RegExp]>([
    ['root@host', /cannot be parsed/],
    ['https://root@host', /scheme must be ssh/],
    ['ssh://host:22', /user is missing/],
    ['ssh://root:secret@host', /passwords are not accepted/],
    ['ssh://-oProxyCommand=x@host', /user name is not valid/],
    ['ssh://root@host/path', /path/],
    ['ssh://root@host?x=1', /query/],
  ])('%s is refused', (url, message) => {
    expect(() => parseSshUrl(url)).toThrow(message);
  });
});
