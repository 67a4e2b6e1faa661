import { ConfigError, loadAgentConfig, loadApiConfig, loadCoordinatorConfig } from './index';

const token = 'a'.repeat(32);

describe('loadApiConfig', () => {
  test('defaults for this machine', () => {
    expect(loadApiConfig({ FARM_ADMIN_TOKEN: token })).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'farm',
      databaseUrl: 'postgresql://postgres@127.0.0.1:5432/buildfarm',
      host: '127.0.0.1',
      port: 8080,
      adminToken: token,
      allowFileRepos: false,
      insecureRegistries: [],
      rateLimitPerMinute: 60_000,
      logLevel: 'info',
    });
  });

  test('FARM_CONTEXT_REPOSITORY names the registry repository uploaded contexts go to', () => {
    const config = loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_CONTEXT_REPOSITORY: '127.0.0.1:5000/farm/contexts' });
    expect(config.contextRepository).toEqual({ registry: '127.0.0.1:5000', repository: 'farm/contexts' });
    for (const bad of ['contexts', 'farm/contexts', '127.0.0.1:5000/', '127.0.0.1:5000/Farm']) {
      expect(() => loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_CONTEXT_REPOSITORY: bad })).toThrow(
        /FARM_CONTEXT_REPOSITORY: must be a registry repository/,
      );
    }
  });

  test('FARM_TRUST_PROXY: a hop count or the proxies to believe about X-Forwarded-For', () => {
    expect(loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(
      loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_TRUST_PROXY: 'loopback, 10.0.0.0/8,fd00::/8' }).trustProxy,
    ).toEqual(['loopback', '10.0.0.0/8', 'fd00::/8']);
    for (const bad of ['yes', 'proxy.example.com', '10.0.0.0/8,']) {
      expect(() => loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_TRUST_PROXY: bad })).toThrow(
        /FARM_TRUST_PROXY: must be/,
      );
    }
  });

  test('names every bad variable at once', () => {
    let error: ConfigError | undefined;
    try {
      loadApiConfig({
        PORT: 'eighty',
        DATABASE_URL: 'mysql://x/y',
        REDIS_URL: 'not a url',
        FARM_ALLOW_FILE_REPOS: 'maybe',
      });
    } catch (caught) {
      error = caught as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.problems).toEqual([
      'FARM_ADMIN_TOKEN is required',
      'REDIS_URL is not a valid URL',
      'DATABASE_URL must be a postgres: or postgresql: URL, got mysql:',
      'PORT must be an integer from 0 to 65535, got "eighty"',
      'FARM_ALLOW_FILE_REPOS must be true or false (1/0), got "maybe"',
    ]);
    expect(error!.message).toContain('invalid configuration');
  });

  test('a short admin token is refused', () => {
    expect(() => loadApiConfig({ FARM_ADMIN_TOKEN: 'short' })).toThrow(/at least 16 characters/);
  });

  test('the queue prefix must fit a Redis ACL key pattern', () => {
    expect(() => loadApiConfig({ FARM_ADMIN_TOKEN: token, FARM_QUEUE_PREFIX: 'farm:*' })).toThrow(/FARM_QUEUE_PREFIX/);
  });
});

describe('loadCoordinatorConfig', () => {
  test('registry credentials as docker config.json, insecure registries as a list', () => {
    const config = loadCoordinatorConfig({
      FARM_REGISTRY_AUTH: JSON.stringify({ auths: { 'registry.example.com': { auth: 'dTpw' } } }),
      FARM_INSECURE_REGISTRIES: 'a.local:5000, b.local',
    });
    expect(config.registryAuth).toEqual({ auths: { 'registry.example.com': { auth: 'dTpw' } } });
    expect(config.insecureRegistries).toEqual(['a.local:5000', 'b.local']);
  });

  test('a registry auth without "auths" is refused with the variable named', () => {
    expect(() => loadCoordinatorConfig({ FARM_REGISTRY_AUTH: '{"x": 1}' })).toThrow(/FARM_REGISTRY_AUTH: .*auths/);
    expect(() => loadCoordinatorConfig({ FARM_REGISTRY_AUTH: '{not json' })).toThrow(
      /FARM_REGISTRY_AUTH: is not valid JSON/,
    );
  });
});

describe('loadAgentConfig', () => {
  test('agents refuse database credentials', () => {
    expect(() => loadAgentConfig({ DATABASE_URL: 'postgresql://x@y/z' })).toThrow(
      /agents reach Redis, git and registries only/,
    );
  });

  test('FARM_REGISTRY_CACHE names the registry and repository prefix of the registry layer cache', () => {
    expect(loadAgentConfig({}).registryCache).toBeUndefined();
    expect(loadAgentConfig({ FARM_REGISTRY_CACHE: '127.0.0.1:5000/farm/cache' }).registryCache).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'farm/cache',
    });
    for (const bad of ['cache', 'farm/cache', '127.0.0.1:5000/', '127.0.0.1:5000/Cache', 'r.example/cache:tag']) {
      expect(() => loadAgentConfig({ FARM_REGISTRY_CACHE: bad })).toThrow(
        /FARM_REGISTRY_CACHE: must be a registry repository such as registry.example.com\/buildfarm\/cache/,
      );
    }
  });

  test('emulated platforms are an explicit list', () => {
    expect(loadAgentConfig({ FARM_EMULATED_PLATFORMS: 'linux/arm64,linux/arm/v7' }).emulatedPlatforms).toEqual([
      'linux/arm64',
      'linux/arm/v7',
    ]);
    expect(loadAgentConfig({}).emulatedPlatforms).toEqual([]);
  });

  test('cache pruning thresholds: percentages of the disk, the low one not above the high one', () => {
    expect(loadAgentConfig({}).cachePrune).toEqual({ highPercent: 85, lowPercent: 70 });
    expect(
      loadAgentConfig({ FARM_CACHE_PRUNE_HIGH_PERCENT: '90', FARM_CACHE_PRUNE_LOW_PERCENT: '80' }).cachePrune,
    ).toEqual({ highPercent: 90, lowPercent: 80 });
    // A high mark below the default low one brings the low one down with it.
    expect(loadAgentConfig({ FARM_CACHE_PRUNE_HIGH_PERCENT: '50' }).cachePrune).toEqual({
      highPercent: 50,
      lowPercent: 50,
    });
    expect(() => loadAgentConfig({ FARM_CACHE_PRUNE_HIGH_PERCENT: '101' })).toThrow(
      /FARM_CACHE_PRUNE_HIGH_PERCENT must be an integer from 0 to 100, got "101"/,
    );
    expect(() => loadAgentConfig({ FARM_CACHE_PRUNE_LOW_PERCENT: 'half' })).toThrow(
      /FARM_CACHE_PRUNE_LOW_PERCENT must be an integer from 0 to 100/,
    );
    expect(() => loadAgentConfig({ FARM_CACHE_PRUNE_HIGH_PERCENT: '60', FARM_CACHE_PRUNE_LOW_PERCENT: '70' })).toThrow(
      /FARM_CACHE_PRUNE_LOW_PERCENT \(70\) must not be above FARM_CACHE_PRUNE_HIGH_PERCENT \(60\)/,
    );
  });
});
