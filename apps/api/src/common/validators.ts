import { applyDecorators } from '@nestjs/common';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsOptional, IsString, MaxLength, MinLength } from 'class-validator';

/** A list of at most `max` strings of at most `itemMaxLength` characters (at least one when `minMessage` is given). */
export function IsStringList(max: number, itemMaxLength: number, minMessage?: string): PropertyDecorator {
  return applyDecorators(
    IsArray(),
    ...(minMessage ? [ArrayMinSize(1, { message: minMessage })] : []),
    ArrayMaxSize(max),
    IsString({ each: true }),
    MaxLength(itemMaxLength, { each: true }),
  );
}

/** An optional path inside the repository (Dockerfile, build context); its meaning is checked later. */
export function IsOptionalRepoPath(): PropertyDecorator {
  return applyDecorators(IsOptional(), IsString(), MinLength(1), MaxLength(1024));
}
