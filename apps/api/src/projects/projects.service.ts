import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { ApiConfig } from '@farm/config';
import { ProjectRepository, type NewProject, type Project } from '@farm/db';
import { formatImageReference, parseImageReference, validateRefFilter, validateTagTemplates } from '@farm/domain';
import { validateRepoPath, validateRepoUrl } from '@farm/git';
import { ApiError } from '../common/api-error';
import { check, stringMap, validatePlatform } from '../builds/build-request';
import { API_CONFIG } from '../tokens';
import type { CreateProjectDto, ListDeliveriesQuery, UpdateProjectDto } from './project.dto';
import { toDeliveryView, toProjectView, type DeliveryView, type ProjectView } from './project.view';

/** Where each forge's API lives when a project does not say (self-hosted ones must say). */
const DEFAULT_FORGE_API: Record<string, string | undefined> = {
  github: 'https://api.github.com',
  gitlab: 'https://gitlab.com',
};

@Injectable()
export class ProjectsService {
  constructor(
    private readonly projects: ProjectRepository,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async create(dto: CreateProjectDto): Promise<ProjectView> {
    const project = await this.projects.create({ id: randomUUID(), ...this.validate(dto) });
    if (!project) throw new ApiError('conflict', `a project named "${dto.name}" exists already`, 'name');
    return toProjectView(project);
  }

  async get(id: string): Promise<ProjectView> {
    return toProjectView(await this.findOrThrow(id));
  }

  async list(): Promise<{ projects: ProjectView[] }> {
    return { projects: (await this.projects.list()).map(toProjectView) };
  }

  /** Validates the project as it would be after the change, then applies the change. */
  async update(id: string, dto: UpdateProjectDto): Promise<ProjectView> {
    const current = await this.findOrThrow(id);
    const merged = this.validate({ ...this.asDto(current), ...dto });
    const updated = await this.projects.update(id, merged);
    if (updated === null) throw new ApiError('not_found', `project ${id} not found`);
    if (updated === undefined)
      throw new ApiError('conflict', `a project named "${merged.name}" exists already`, 'name');
    return toProjectView(updated);
  }

  async delete(id: string): Promise<void> {
    if (!(this.isId(id) && (await this.projects.delete(id))))
      throw new ApiError('not_found', `project ${id} not found`);
  }

  async deliveries(id: string, query: ListDeliveriesQuery): Promise<{ deliveries: DeliveryView[] }> {
    await this.findOrThrow(id);
    const deliveries = await this.projects.listDeliveries(id, query.limit ? Number(query.limit) : 50);
    return { deliveries: deliveries.map(toDeliveryView) };
  }

  private async findOrThrow(id: string): Promise<Project> {
    const project = this.isId(id) ? await this.projects.find(id) : null;
    if (!project) throw new ApiError('not_found', `project ${id} not found`);
    return project;
  }

  private isId(id: string): boolean {
    return /^[0-9a-f-]{36}$/.test(id);
  }

  private validate(dto: CreateProjectDto): Omit<NewProject, 'id'> {
    const repo = check('repo', () => validateRepoUrl(dto.repo, { allowFile: this.config.allowFileRepos }));
    const image = check('image', () => {
      const reference = parseImageReference(dto.image);
      if (reference.tag || reference.digest) {
        throw new Error('must be a repository without tag or digest (tags come from the tag templates)');
      }
      return formatImageReference(reference);
    });
    const platforms = dto.platforms.map((p, i) => validatePlatform(p, `platforms[${i}]`));
    const duplicate = platforms.find((p, i) => platforms.indexOf(p) !== i);
    if (duplicate) throw new ApiError('invalid_request', `platform ${duplicate} is listed twice`, 'platforms');
    check('tags', () => validateTagTemplates(dto.tags));
    const branches = dto.branches ?? [];
    const tagsFilter = dto.tagsFilter ?? [];
    check('branches', () => validateRefFilter(branches));
    check('tagsFilter', () => validateRefFilter(tagsFilter));
    if (dto.forgeToken && !dto.forge) {
      throw new ApiError('invalid_request', 'forge is required with forgeToken (github, gitlab or gitea)', 'forge');
    }
    const forgeApiUrl = dto.forge ? (dto.forgeApiUrl ?? DEFAULT_FORGE_API[dto.forge]) : undefined;
    if (dto.forge && !forgeApiUrl) {
      throw new ApiError('invalid_request', `forgeApiUrl is required for ${dto.forge} (self-hosted)`, 'forgeApiUrl');
    }
    // Checked even without a forge: a bad URL is refused rather than silently dropped.
    if (dto.forgeApiUrl !== undefined) check('forgeApiUrl', () => this.httpUrl(dto.forgeApiUrl as string));
    if (forgeApiUrl) check('forgeApiUrl', () => this.httpUrl(forgeApiUrl));
    return {
      name: dto.name,
      repo,
      image,
      platforms,
      tags: dto.tags,
      branches,
      tagsFilter,
      dockerfile: check('dockerfile', () => validateRepoPath(dto.dockerfile ?? 'Dockerfile', 'dockerfile')),
      context: check('context', () => validateRepoPath(dto.context ?? '.', 'context')),
      buildArgs: stringMap(dto.buildArgs, 'buildArgs'),
      webhookSecret: dto.webhookSecret,
      forge: dto.forge ?? null,
      forgeApiUrl: forgeApiUrl ?? null,
      forgeRepository: dto.forge ? (dto.forgeRepository ?? null) : null,
      forgeToken: dto.forge ? (dto.forgeToken ?? null) : null,
    };
  }

  private httpUrl(value: string): string {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('must be an http(s) URL');
    if (url.username || url.password) throw new Error('must not carry credentials (use forgeToken)');
    return value;
  }

  /** The stored project in request form, so a PATCH is validated as a whole. */
  private asDto(project: Project): CreateProjectDto {
    return {
      name: project.name,
      repo: project.repo,
      image: project.image,
      platforms: project.platforms,
      tags: project.tags,
      branches: project.branches,
      tagsFilter: project.tagsFilter,
      dockerfile: project.dockerfile,
      context: project.context,
      buildArgs: project.buildArgs as Record<string, string>,
      webhookSecret: project.webhookSecret,
      forge: project.forge ?? undefined,
      forgeApiUrl: project.forgeApiUrl ?? undefined,
      forgeRepository: project.forgeRepository ?? undefined,
      forgeToken: project.forgeToken ?? undefined,
    };
  }
}
